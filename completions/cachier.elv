
use builtin;
use str;

set edit:completion:arg-completer[cachier] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'cachier'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'cachier'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run a command, or replay its stored result'
            cand key 'Print the key a command line maps to (--explain: every component)'
            cand clear 'Remove entries: all, or those matching the filters or a command line'
            cand stats 'Entries, bytes, hits, misses, waits and time saved, per namespace'
            cand ls 'List entries: key, namespace, argv, age, size, exit code, hits'
            cand show 'Print an entry''s stdout, stderr or metadata'
            cand precache 'Store a given result, as if the command had run'
            cand export 'Write entries to stdout in a portable, versioned stream'
            cand import 'Read entries written by `cachier export` from stdin'
            cand gc 'Evict least-recently-used entries down to max_size'
            cand path 'Print where the cache lives'
            cand config 'Read and edit the config file'
            cand daemon 'Start, stop or inspect the memory backend''s per-user daemon'
            cand keygen 'Make an Ed25519 key pair for signed entries; print the public key'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cachier;run'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --env 'Key on this environment variable (repeatable; globs such as ''AWS_*'')'
            cand --input 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)'
            cand --output 'Store and restore the files the command makes: a file, directory or glob under the working directory (''!GLOB'' excludes; repeatable)'
            cand --key 'Extra key material, e.g. a commit or a version tag (repeatable)'
            cand --name 'Namespace for stats, ls and clear [default: the program''s base name]'
            cand --stale-after 'Recompute entries older than this (90s, 15m, 1h, 2d) [env: CACHIER_STALE_AFTER]'
            cand --max-age 'Never serve an entry older than this, even with --next-time'
            cand --stale-if-error 'If the command fails (an exit code not stored), serve the stale entry instead, if any no older than DUR (default: any; --max-age still bounds it); the command''s output is held back until its exit code is known'
            cand --cache-exit-codes 'Exit codes whose results are stored'
            cand --entry-size-limit 'Pass larger output through without storing it (e.g. 50M) [env: CACHIER_ENTRY_SIZE_LIMIT]'
            cand --wait-for-calc-timeout 'Stop waiting for another caller''s run after this long and run too (0 = never) [env: CACHIER_WAIT_FOR_CALC_TIMEOUT]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand --all-env 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)'
            cand --no-ignore 'Walk --input directories and globs whole: .git/ and ignored files count too'
            cand --stdin 'Read standard input whole, key on it and feed it to the command'
            cand --no-cwd 'Leave the working directory out of the key'
            cand --no-program 'Leave the program''s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name'
            cand --next-time 'Serve a stale entry at once and refresh it in the background'
            cand --overwrite 'Run and store even if a fresh entry exists'
            cand --skip-cache 'Run the command without reading or writing the cache'
            cand --cache-failures 'Store the result whatever the exit code'
            cand --no-empty 'Do not store a result whose stdout is empty'
            cand --cleanup-stale 'Remove this namespace''s stale entries in the background (at most once per cleanup_interval)'
            cand --refresh 'Internal: the detached refresh started by --next-time'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;key'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --env 'Key on this environment variable (repeatable; globs such as ''AWS_*'')'
            cand --input 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)'
            cand --output 'Store and restore the files the command makes: a file, directory or glob under the working directory (''!GLOB'' excludes; repeatable)'
            cand --key 'Extra key material, e.g. a commit or a version tag (repeatable)'
            cand --name 'Namespace for stats, ls and clear [default: the program''s base name]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand --explain 'Print every key component with its hash, and why the last entry differs'
            cand --all-env 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)'
            cand --no-ignore 'Walk --input directories and globs whole: .git/ and ignored files count too'
            cand --stdin 'Read standard input whole, key on it and feed it to the command'
            cand --no-cwd 'Leave the working directory out of the key'
            cand --no-program 'Leave the program''s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;clear'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --stale-after 'The freshness bound --stale uses [env: CACHIER_STALE_AFTER]'
            cand --older-than 'Only entries older than this'
            cand --env 'Key on this environment variable (repeatable; globs such as ''AWS_*'')'
            cand --input 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)'
            cand --output 'Store and restore the files the command makes: a file, directory or glob under the working directory (''!GLOB'' excludes; repeatable)'
            cand --key 'Extra key material, e.g. a commit or a version tag (repeatable)'
            cand --name 'Namespace for stats, ls and clear [default: the program''s base name]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand --stale 'Only entries older than stale_after (see --stale-after)'
            cand --being-calculated 'Also wipe leftover claims of dead computations (never needed to unstick a caller)'
            cand --all-env 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)'
            cand --no-ignore 'Walk --input directories and globs whole: .git/ and ignored files count too'
            cand --stdin 'Read standard input whole, key on it and feed it to the command'
            cand --no-cwd 'Leave the working directory out of the key'
            cand --no-program 'Leave the program''s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;stats'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --name 'Only this namespace'
            cand --format 'Output format: a table, JSON, or OpenMetrics text for Prometheus (node_exporter''s textfile collector)'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand --json 'Machine-readable output (same as --format json)'
            cand --reset 'Zero the hit, miss, wait and stale-serve counters'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;ls'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --name 'Only this namespace'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand --json 'Machine-readable output'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;show'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand --stdout 'Print the stored stdout, byte for byte'
            cand --stderr 'Print the stored stderr, byte for byte'
            cand --json 'Print the metadata as JSON'
            cand --outputs 'List the stored --output files: kind, mode, size, path (with --json, as JSON; each path as {"text": ...}, or {"bytes": BASE64} when it is not UTF-8)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;precache'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --stdout 'File holding the stdout to store (`-` for standard input)'
            cand --stderr 'File holding the stderr to store'
            cand --exit-code 'The exit code to store'
            cand --env 'Key on this environment variable (repeatable; globs such as ''AWS_*'')'
            cand --input 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)'
            cand --output 'Store and restore the files the command makes: a file, directory or glob under the working directory (''!GLOB'' excludes; repeatable)'
            cand --key 'Extra key material, e.g. a commit or a version tag (repeatable)'
            cand --name 'Namespace for stats, ls and clear [default: the program''s base name]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand --all-env 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)'
            cand --no-ignore 'Walk --input directories and globs whole: .git/ and ignored files count too'
            cand --stdin 'Read standard input whole, key on it and feed it to the command'
            cand --no-cwd 'Leave the working directory out of the key'
            cand --no-program 'Leave the program''s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;export'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --name 'Only this namespace'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;import'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand --sign 'Sign every entry not already signed by a trusted key with your signing key, instead of refusing it'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;gc'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --max-size 'Evict down to this size instead of the configured max_size (e.g. 500M)'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;path'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;config'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand get 'Print one setting''s value from the config file'
            cand set 'Set a setting in the config file'
            cand unset 'Remove a setting from the config file'
            cand list 'Print every setting in the config file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cachier;config;get'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;config;set'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;config;unset'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;config;list'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;config;help'= {
            cand get 'Print one setting''s value from the config file'
            cand set 'Set a setting in the config file'
            cand unset 'Remove a setting from the config file'
            cand list 'Print every setting in the config file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cachier;config;help;get'= {
        }
        &'cachier;config;help;set'= {
        }
        &'cachier;config;help;unset'= {
        }
        &'cachier;config;help;list'= {
        }
        &'cachier;config;help;help'= {
        }
        &'cachier;daemon'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand start 'Start the daemon in the background, unless it runs already'
            cand stop 'Stop the daemon; the entries it holds are gone'
            cand status 'Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)'
            cand serve 'Run the daemon in the foreground (what `start` and first uses spawn)'
            cand debug-age 'Test only: make every entry MS milliseconds older'
            cand debug-damage 'Test only: damage every entry (flip its first byte, or --truncate it)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cachier;daemon;start'= {
            cand --idle-timeout 'Exit after this long without requests [env: CACHIER_IDLE_TIMEOUT] [default: 15m]'
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;daemon;stop'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;daemon;status'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --json 'Machine-readable output'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;daemon;serve'= {
            cand --idle-timeout 'idle-timeout'
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;daemon;debug-age'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;daemon;debug-damage'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --truncate 'truncate'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;daemon;help'= {
            cand start 'Start the daemon in the background, unless it runs already'
            cand stop 'Stop the daemon; the entries it holds are gone'
            cand status 'Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)'
            cand serve 'Run the daemon in the foreground (what `start` and first uses spawn)'
            cand debug-age 'Test only: make every entry MS milliseconds older'
            cand debug-damage 'Test only: damage every entry (flip its first byte, or --truncate it)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cachier;daemon;help;start'= {
        }
        &'cachier;daemon;help;stop'= {
        }
        &'cachier;daemon;help;status'= {
        }
        &'cachier;daemon;help;serve'= {
        }
        &'cachier;daemon;help;debug-age'= {
        }
        &'cachier;daemon;help;debug-damage'= {
        }
        &'cachier;daemon;help;help'= {
        }
        &'cachier;keygen'= {
            cand --backend 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]'
            cand --tier 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)'
            cand --cache-dir 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]'
            cand --sql-url 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]'
            cand --redis-url 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]'
            cand --mongo-url 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]'
            cand --mongo-collection 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]'
            cand --s3-url 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]'
            cand --s3-endpoint 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]'
            cand --max-memory 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]'
            cand --strict 'Turn cache problems into errors (exit 125) instead of running uncached'
            cand --read-only 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
            cand -v 'Say on stderr whether a run hit or missed, and why it waited'
            cand --verbose 'Say on stderr whether a run hit or missed, and why it waited'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'cachier;help'= {
            cand run 'Run a command, or replay its stored result'
            cand key 'Print the key a command line maps to (--explain: every component)'
            cand clear 'Remove entries: all, or those matching the filters or a command line'
            cand stats 'Entries, bytes, hits, misses, waits and time saved, per namespace'
            cand ls 'List entries: key, namespace, argv, age, size, exit code, hits'
            cand show 'Print an entry''s stdout, stderr or metadata'
            cand precache 'Store a given result, as if the command had run'
            cand export 'Write entries to stdout in a portable, versioned stream'
            cand import 'Read entries written by `cachier export` from stdin'
            cand gc 'Evict least-recently-used entries down to max_size'
            cand path 'Print where the cache lives'
            cand config 'Read and edit the config file'
            cand daemon 'Start, stop or inspect the memory backend''s per-user daemon'
            cand keygen 'Make an Ed25519 key pair for signed entries; print the public key'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'cachier;help;run'= {
        }
        &'cachier;help;key'= {
        }
        &'cachier;help;clear'= {
        }
        &'cachier;help;stats'= {
        }
        &'cachier;help;ls'= {
        }
        &'cachier;help;show'= {
        }
        &'cachier;help;precache'= {
        }
        &'cachier;help;export'= {
        }
        &'cachier;help;import'= {
        }
        &'cachier;help;gc'= {
        }
        &'cachier;help;path'= {
        }
        &'cachier;help;config'= {
            cand get 'Print one setting''s value from the config file'
            cand set 'Set a setting in the config file'
            cand unset 'Remove a setting from the config file'
            cand list 'Print every setting in the config file'
        }
        &'cachier;help;config;get'= {
        }
        &'cachier;help;config;set'= {
        }
        &'cachier;help;config;unset'= {
        }
        &'cachier;help;config;list'= {
        }
        &'cachier;help;daemon'= {
            cand start 'Start the daemon in the background, unless it runs already'
            cand stop 'Stop the daemon; the entries it holds are gone'
            cand status 'Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)'
            cand serve 'Run the daemon in the foreground (what `start` and first uses spawn)'
            cand debug-age 'Test only: make every entry MS milliseconds older'
            cand debug-damage 'Test only: damage every entry (flip its first byte, or --truncate it)'
        }
        &'cachier;help;daemon;start'= {
        }
        &'cachier;help;daemon;stop'= {
        }
        &'cachier;help;daemon;status'= {
        }
        &'cachier;help;daemon;serve'= {
        }
        &'cachier;help;daemon;debug-age'= {
        }
        &'cachier;help;daemon;debug-damage'= {
        }
        &'cachier;help;keygen'= {
        }
        &'cachier;help;help'= {
        }
    ]
    $completions[$command]
}
