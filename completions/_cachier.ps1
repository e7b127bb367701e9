
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'cachier' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'cachier'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'cachier' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a command, or replay its stored result')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Print the key a command line maps to (--explain: every component)')
            [CompletionResult]::new('clear', 'clear', [CompletionResultType]::ParameterValue, 'Remove entries: all, or those matching the filters or a command line')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Entries, bytes, hits, misses, waits and time saved, per namespace')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List entries: key, namespace, argv, age, size, exit code, hits')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print an entry''s stdout, stderr or metadata')
            [CompletionResult]::new('precache', 'precache', [CompletionResultType]::ParameterValue, 'Store a given result, as if the command had run')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write entries to stdout in a portable, versioned stream')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Read entries written by `cachier export` from stdin')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Evict least-recently-used entries down to max_size')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print where the cache lives')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Read and edit the config file')
            [CompletionResult]::new('daemon', 'daemon', [CompletionResultType]::ParameterValue, 'Start, stop or inspect the memory backend''s per-user daemon')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Make an Ed25519 key pair for signed entries; print the public key')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cachier;run' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Key on this environment variable (repeatable; globs such as ''AWS_*'')')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Store and restore the files the command makes: a file, directory or glob under the working directory (''!GLOB'' excludes; repeatable)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Extra key material, e.g. a commit or a version tag (repeatable)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Namespace for stats, ls and clear [default: the program''s base name]')
            [CompletionResult]::new('--stale-after', '--stale-after', [CompletionResultType]::ParameterName, 'Recompute entries older than this (90s, 15m, 1h, 2d) [env: CACHIER_STALE_AFTER]')
            [CompletionResult]::new('--max-age', '--max-age', [CompletionResultType]::ParameterName, 'Never serve an entry older than this, even with --next-time')
            [CompletionResult]::new('--stale-if-error', '--stale-if-error', [CompletionResultType]::ParameterName, 'If the command fails (an exit code not stored), serve the stale entry instead, if any no older than DUR (default: any; --max-age still bounds it); the command''s output is held back until its exit code is known')
            [CompletionResult]::new('--cache-exit-codes', '--cache-exit-codes', [CompletionResultType]::ParameterName, 'Exit codes whose results are stored')
            [CompletionResult]::new('--entry-size-limit', '--entry-size-limit', [CompletionResultType]::ParameterName, 'Pass larger output through without storing it (e.g. 50M) [env: CACHIER_ENTRY_SIZE_LIMIT]')
            [CompletionResult]::new('--wait-for-calc-timeout', '--wait-for-calc-timeout', [CompletionResultType]::ParameterName, 'Stop waiting for another caller''s run after this long and run too (0 = never) [env: CACHIER_WAIT_FOR_CALC_TIMEOUT]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--all-env', '--all-env', [CompletionResultType]::ParameterName, 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)')
            [CompletionResult]::new('--no-ignore', '--no-ignore', [CompletionResultType]::ParameterName, 'Walk --input directories and globs whole: .git/ and ignored files count too')
            [CompletionResult]::new('--stdin', '--stdin', [CompletionResultType]::ParameterName, 'Read standard input whole, key on it and feed it to the command')
            [CompletionResult]::new('--no-cwd', '--no-cwd', [CompletionResultType]::ParameterName, 'Leave the working directory out of the key')
            [CompletionResult]::new('--no-program', '--no-program', [CompletionResultType]::ParameterName, 'Leave the program''s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name')
            [CompletionResult]::new('--next-time', '--next-time', [CompletionResultType]::ParameterName, 'Serve a stale entry at once and refresh it in the background')
            [CompletionResult]::new('--overwrite', '--overwrite', [CompletionResultType]::ParameterName, 'Run and store even if a fresh entry exists')
            [CompletionResult]::new('--skip-cache', '--skip-cache', [CompletionResultType]::ParameterName, 'Run the command without reading or writing the cache')
            [CompletionResult]::new('--cache-failures', '--cache-failures', [CompletionResultType]::ParameterName, 'Store the result whatever the exit code')
            [CompletionResult]::new('--no-empty', '--no-empty', [CompletionResultType]::ParameterName, 'Do not store a result whose stdout is empty')
            [CompletionResult]::new('--cleanup-stale', '--cleanup-stale', [CompletionResultType]::ParameterName, 'Remove this namespace''s stale entries in the background (at most once per cleanup_interval)')
            [CompletionResult]::new('--refresh', '--refresh', [CompletionResultType]::ParameterName, 'Internal: the detached refresh started by --next-time')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;key' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Key on this environment variable (repeatable; globs such as ''AWS_*'')')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Store and restore the files the command makes: a file, directory or glob under the working directory (''!GLOB'' excludes; repeatable)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Extra key material, e.g. a commit or a version tag (repeatable)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Namespace for stats, ls and clear [default: the program''s base name]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--explain', '--explain', [CompletionResultType]::ParameterName, 'Print every key component with its hash, and why the last entry differs')
            [CompletionResult]::new('--all-env', '--all-env', [CompletionResultType]::ParameterName, 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)')
            [CompletionResult]::new('--no-ignore', '--no-ignore', [CompletionResultType]::ParameterName, 'Walk --input directories and globs whole: .git/ and ignored files count too')
            [CompletionResult]::new('--stdin', '--stdin', [CompletionResultType]::ParameterName, 'Read standard input whole, key on it and feed it to the command')
            [CompletionResult]::new('--no-cwd', '--no-cwd', [CompletionResultType]::ParameterName, 'Leave the working directory out of the key')
            [CompletionResult]::new('--no-program', '--no-program', [CompletionResultType]::ParameterName, 'Leave the program''s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;clear' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--stale-after', '--stale-after', [CompletionResultType]::ParameterName, 'The freshness bound --stale uses [env: CACHIER_STALE_AFTER]')
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'Only entries older than this')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Key on this environment variable (repeatable; globs such as ''AWS_*'')')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Store and restore the files the command makes: a file, directory or glob under the working directory (''!GLOB'' excludes; repeatable)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Extra key material, e.g. a commit or a version tag (repeatable)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Namespace for stats, ls and clear [default: the program''s base name]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--stale', '--stale', [CompletionResultType]::ParameterName, 'Only entries older than stale_after (see --stale-after)')
            [CompletionResult]::new('--being-calculated', '--being-calculated', [CompletionResultType]::ParameterName, 'Also wipe leftover claims of dead computations (never needed to unstick a caller)')
            [CompletionResult]::new('--all-env', '--all-env', [CompletionResultType]::ParameterName, 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)')
            [CompletionResult]::new('--no-ignore', '--no-ignore', [CompletionResultType]::ParameterName, 'Walk --input directories and globs whole: .git/ and ignored files count too')
            [CompletionResult]::new('--stdin', '--stdin', [CompletionResultType]::ParameterName, 'Read standard input whole, key on it and feed it to the command')
            [CompletionResult]::new('--no-cwd', '--no-cwd', [CompletionResultType]::ParameterName, 'Leave the working directory out of the key')
            [CompletionResult]::new('--no-program', '--no-program', [CompletionResultType]::ParameterName, 'Leave the program''s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;stats' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only this namespace')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format: a table, JSON, or OpenMetrics text for Prometheus (node_exporter''s textfile collector)')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output (same as --format json)')
            [CompletionResult]::new('--reset', '--reset', [CompletionResultType]::ParameterName, 'Zero the hit, miss, wait and stale-serve counters')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;ls' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only this namespace')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;show' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--stdout', '--stdout', [CompletionResultType]::ParameterName, 'Print the stored stdout, byte for byte')
            [CompletionResult]::new('--stderr', '--stderr', [CompletionResultType]::ParameterName, 'Print the stored stderr, byte for byte')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the metadata as JSON')
            [CompletionResult]::new('--outputs', '--outputs', [CompletionResultType]::ParameterName, 'List the stored --output files: kind, mode, size, path (with --json, as JSON; each path as {"text": ...}, or {"bytes": BASE64} when it is not UTF-8)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;precache' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--stdout', '--stdout', [CompletionResultType]::ParameterName, 'File holding the stdout to store (`-` for standard input)')
            [CompletionResult]::new('--stderr', '--stderr', [CompletionResultType]::ParameterName, 'File holding the stderr to store')
            [CompletionResult]::new('--exit-code', '--exit-code', [CompletionResultType]::ParameterName, 'The exit code to store')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Key on this environment variable (repeatable; globs such as ''AWS_*'')')
            [CompletionResult]::new('--input', '--input', [CompletionResultType]::ParameterName, 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Store and restore the files the command makes: a file, directory or glob under the working directory (''!GLOB'' excludes; repeatable)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Extra key material, e.g. a commit or a version tag (repeatable)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Namespace for stats, ls and clear [default: the program''s base name]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--all-env', '--all-env', [CompletionResultType]::ParameterName, 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)')
            [CompletionResult]::new('--no-ignore', '--no-ignore', [CompletionResultType]::ParameterName, 'Walk --input directories and globs whole: .git/ and ignored files count too')
            [CompletionResult]::new('--stdin', '--stdin', [CompletionResultType]::ParameterName, 'Read standard input whole, key on it and feed it to the command')
            [CompletionResult]::new('--no-cwd', '--no-cwd', [CompletionResultType]::ParameterName, 'Leave the working directory out of the key')
            [CompletionResult]::new('--no-program', '--no-program', [CompletionResultType]::ParameterName, 'Leave the program''s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;export' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only this namespace')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;import' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--sign', '--sign', [CompletionResultType]::ParameterName, 'Sign every entry not already signed by a trusted key with your signing key, instead of refusing it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;gc' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--max-size', '--max-size', [CompletionResultType]::ParameterName, 'Evict down to this size instead of the configured max_size (e.g. 500M)')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;path' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;config' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print one setting''s value from the config file')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Set a setting in the config file')
            [CompletionResult]::new('unset', 'unset', [CompletionResultType]::ParameterValue, 'Remove a setting from the config file')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Print every setting in the config file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cachier;config;get' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;config;set' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;config;unset' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;config;list' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;config;help' {
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print one setting''s value from the config file')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Set a setting in the config file')
            [CompletionResult]::new('unset', 'unset', [CompletionResultType]::ParameterValue, 'Remove a setting from the config file')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Print every setting in the config file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cachier;config;help;get' {
            break
        }
        'cachier;config;help;set' {
            break
        }
        'cachier;config;help;unset' {
            break
        }
        'cachier;config;help;list' {
            break
        }
        'cachier;config;help;help' {
            break
        }
        'cachier;daemon' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Start the daemon in the background, unless it runs already')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop the daemon; the entries it holds are gone')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the daemon in the foreground (what `start` and first uses spawn)')
            [CompletionResult]::new('debug-age', 'debug-age', [CompletionResultType]::ParameterValue, 'Test only: make every entry MS milliseconds older')
            [CompletionResult]::new('debug-damage', 'debug-damage', [CompletionResultType]::ParameterValue, 'Test only: damage every entry (flip its first byte, or --truncate it)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cachier;daemon;start' {
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Exit after this long without requests [env: CACHIER_IDLE_TIMEOUT] [default: 15m]')
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;daemon;stop' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;daemon;status' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;daemon;serve' {
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'idle-timeout')
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;daemon;debug-age' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;daemon;debug-damage' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--truncate', '--truncate', [CompletionResultType]::ParameterName, 'truncate')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;daemon;help' {
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Start the daemon in the background, unless it runs already')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop the daemon; the entries it holds are gone')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the daemon in the foreground (what `start` and first uses spawn)')
            [CompletionResult]::new('debug-age', 'debug-age', [CompletionResultType]::ParameterValue, 'Test only: make every entry MS milliseconds older')
            [CompletionResult]::new('debug-damage', 'debug-damage', [CompletionResultType]::ParameterValue, 'Test only: damage every entry (flip its first byte, or --truncate it)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cachier;daemon;help;start' {
            break
        }
        'cachier;daemon;help;stop' {
            break
        }
        'cachier;daemon;help;status' {
            break
        }
        'cachier;daemon;help;serve' {
            break
        }
        'cachier;daemon;help;debug-age' {
            break
        }
        'cachier;daemon;help;debug-damage' {
            break
        }
        'cachier;daemon;help;help' {
            break
        }
        'cachier;keygen' {
            [CompletionResult]::new('--backend', '--backend', [CompletionResultType]::ParameterName, 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]')
            [CompletionResult]::new('--tier', '--tier', [CompletionResultType]::ParameterName, 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)')
            [CompletionResult]::new('--cache-dir', '--cache-dir', [CompletionResultType]::ParameterName, 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]')
            [CompletionResult]::new('--sql-url', '--sql-url', [CompletionResultType]::ParameterName, 'The sql backend''s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'The redis backend''s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]')
            [CompletionResult]::new('--mongo-url', '--mongo-url', [CompletionResultType]::ParameterName, 'The mongo backend''s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]')
            [CompletionResult]::new('--mongo-collection', '--mongo-collection', [CompletionResultType]::ParameterName, 'The mongo backend''s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]')
            [CompletionResult]::new('--s3-url', '--s3-url', [CompletionResultType]::ParameterName, 'The s3 backend''s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'The s3 backend''s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'The memory daemon''s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Turn cache problems into errors (exit 125) instead of running uncached')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Say on stderr whether a run hit or missed, and why it waited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'cachier;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a command, or replay its stored result')
            [CompletionResult]::new('key', 'key', [CompletionResultType]::ParameterValue, 'Print the key a command line maps to (--explain: every component)')
            [CompletionResult]::new('clear', 'clear', [CompletionResultType]::ParameterValue, 'Remove entries: all, or those matching the filters or a command line')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Entries, bytes, hits, misses, waits and time saved, per namespace')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List entries: key, namespace, argv, age, size, exit code, hits')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print an entry''s stdout, stderr or metadata')
            [CompletionResult]::new('precache', 'precache', [CompletionResultType]::ParameterValue, 'Store a given result, as if the command had run')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write entries to stdout in a portable, versioned stream')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Read entries written by `cachier export` from stdin')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Evict least-recently-used entries down to max_size')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print where the cache lives')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Read and edit the config file')
            [CompletionResult]::new('daemon', 'daemon', [CompletionResultType]::ParameterValue, 'Start, stop or inspect the memory backend''s per-user daemon')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Make an Ed25519 key pair for signed entries; print the public key')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'cachier;help;run' {
            break
        }
        'cachier;help;key' {
            break
        }
        'cachier;help;clear' {
            break
        }
        'cachier;help;stats' {
            break
        }
        'cachier;help;ls' {
            break
        }
        'cachier;help;show' {
            break
        }
        'cachier;help;precache' {
            break
        }
        'cachier;help;export' {
            break
        }
        'cachier;help;import' {
            break
        }
        'cachier;help;gc' {
            break
        }
        'cachier;help;path' {
            break
        }
        'cachier;help;config' {
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Print one setting''s value from the config file')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Set a setting in the config file')
            [CompletionResult]::new('unset', 'unset', [CompletionResultType]::ParameterValue, 'Remove a setting from the config file')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Print every setting in the config file')
            break
        }
        'cachier;help;config;get' {
            break
        }
        'cachier;help;config;set' {
            break
        }
        'cachier;help;config;unset' {
            break
        }
        'cachier;help;config;list' {
            break
        }
        'cachier;help;daemon' {
            [CompletionResult]::new('start', 'start', [CompletionResultType]::ParameterValue, 'Start the daemon in the background, unless it runs already')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop the daemon; the entries it holds are gone')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the daemon in the foreground (what `start` and first uses spawn)')
            [CompletionResult]::new('debug-age', 'debug-age', [CompletionResultType]::ParameterValue, 'Test only: make every entry MS milliseconds older')
            [CompletionResult]::new('debug-damage', 'debug-damage', [CompletionResultType]::ParameterValue, 'Test only: damage every entry (flip its first byte, or --truncate it)')
            break
        }
        'cachier;help;daemon;start' {
            break
        }
        'cachier;help;daemon;stop' {
            break
        }
        'cachier;help;daemon;status' {
            break
        }
        'cachier;help;daemon;serve' {
            break
        }
        'cachier;help;daemon;debug-age' {
            break
        }
        'cachier;help;daemon;debug-damage' {
            break
        }
        'cachier;help;keygen' {
            break
        }
        'cachier;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
