# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cachier_global_optspecs
    string join \n backend= tier= cache-dir= sql-url= redis-url= mongo-url= mongo-collection= s3-url= s3-endpoint= max-memory= strict read-only v/verbose h/help V/version
end

function __fish_cachier_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cachier_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cachier_using_subcommand
    set -l cmd (__fish_cachier_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cachier -n "__fish_cachier_needs_command" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_needs_command" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_needs_command" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_needs_command" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_needs_command" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_needs_command" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_needs_command" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_needs_command" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_needs_command" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_needs_command" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_needs_command" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_needs_command" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_needs_command" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_needs_command" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_needs_command" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "run" -d 'Run a command, or replay its stored result'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "key" -d 'Print the key a command line maps to (--explain: every component)'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "clear" -d 'Remove entries: all, or those matching the filters or a command line'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "stats" -d 'Entries, bytes, hits, misses, waits and time saved, per namespace'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "ls" -d 'List entries: key, namespace, argv, age, size, exit code, hits'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "show" -d 'Print an entry\'s stdout, stderr or metadata'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "precache" -d 'Store a given result, as if the command had run'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "export" -d 'Write entries to stdout in a portable, versioned stream'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "import" -d 'Read entries written by `cachier export` from stdin'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "gc" -d 'Evict least-recently-used entries down to max_size'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "path" -d 'Print where the cache lives'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "config" -d 'Read and edit the config file'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "daemon" -d 'Start, stop or inspect the memory backend\'s per-user daemon'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "keygen" -d 'Make an Ed25519 key pair for signed entries; print the public key'
complete -c cachier -n "__fish_cachier_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand run" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l env -d 'Key on this environment variable (repeatable; globs such as \'AWS_*\')' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l input -d 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l output -d 'Store and restore the files the command makes: a file, directory or glob under the working directory (\'!GLOB\' excludes; repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l key -d 'Extra key material, e.g. a commit or a version tag (repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l name -d 'Namespace for stats, ls and clear [default: the program\'s base name]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l stale-after -d 'Recompute entries older than this (90s, 15m, 1h, 2d) [env: CACHIER_STALE_AFTER]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l max-age -d 'Never serve an entry older than this, even with --next-time' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l stale-if-error -d 'If the command fails (an exit code not stored), serve the stale entry instead, if any no older than DUR (default: any; --max-age still bounds it); the command\'s output is held back until its exit code is known' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l cache-exit-codes -d 'Exit codes whose results are stored' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l entry-size-limit -d 'Pass larger output through without storing it (e.g. 50M) [env: CACHIER_ENTRY_SIZE_LIMIT]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l wait-for-calc-timeout -d 'Stop waiting for another caller\'s run after this long and run too (0 = never) [env: CACHIER_WAIT_FOR_CALC_TIMEOUT]' -r
complete -c cachier -n "__fish_cachier_using_subcommand run" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand run" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l all-env -d 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l no-ignore -d 'Walk --input directories and globs whole: .git/ and ignored files count too'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l stdin -d 'Read standard input whole, key on it and feed it to the command'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l no-cwd -d 'Leave the working directory out of the key'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l no-program -d 'Leave the program\'s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l next-time -d 'Serve a stale entry at once and refresh it in the background'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l overwrite -d 'Run and store even if a fresh entry exists'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l skip-cache -d 'Run the command without reading or writing the cache'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l cache-failures -d 'Store the result whatever the exit code'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l no-empty -d 'Do not store a result whose stdout is empty'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l cleanup-stale -d 'Remove this namespace\'s stale entries in the background (at most once per cleanup_interval)'
complete -c cachier -n "__fish_cachier_using_subcommand run" -l refresh -d 'Internal: the detached refresh started by --next-time'
complete -c cachier -n "__fish_cachier_using_subcommand run" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand run" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand key" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand key" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l env -d 'Key on this environment variable (repeatable; globs such as \'AWS_*\')' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l input -d 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l output -d 'Store and restore the files the command makes: a file, directory or glob under the working directory (\'!GLOB\' excludes; repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l key -d 'Extra key material, e.g. a commit or a version tag (repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l name -d 'Namespace for stats, ls and clear [default: the program\'s base name]' -r
complete -c cachier -n "__fish_cachier_using_subcommand key" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand key" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand key" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand key" -l explain -d 'Print every key component with its hash, and why the last entry differs'
complete -c cachier -n "__fish_cachier_using_subcommand key" -l all-env -d 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)'
complete -c cachier -n "__fish_cachier_using_subcommand key" -l no-ignore -d 'Walk --input directories and globs whole: .git/ and ignored files count too'
complete -c cachier -n "__fish_cachier_using_subcommand key" -l stdin -d 'Read standard input whole, key on it and feed it to the command'
complete -c cachier -n "__fish_cachier_using_subcommand key" -l no-cwd -d 'Leave the working directory out of the key'
complete -c cachier -n "__fish_cachier_using_subcommand key" -l no-program -d 'Leave the program\'s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name'
complete -c cachier -n "__fish_cachier_using_subcommand key" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand key" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l stale-after -d 'The freshness bound --stale uses [env: CACHIER_STALE_AFTER]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l older-than -d 'Only entries older than this' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l env -d 'Key on this environment variable (repeatable; globs such as \'AWS_*\')' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l input -d 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l output -d 'Store and restore the files the command makes: a file, directory or glob under the working directory (\'!GLOB\' excludes; repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l key -d 'Extra key material, e.g. a commit or a version tag (repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l name -d 'Namespace for stats, ls and clear [default: the program\'s base name]' -r
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l stale -d 'Only entries older than stale_after (see --stale-after)'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l being-calculated -d 'Also wipe leftover claims of dead computations (never needed to unstick a caller)'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l all-env -d 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l no-ignore -d 'Walk --input directories and globs whole: .git/ and ignored files count too'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l stdin -d 'Read standard input whole, key on it and feed it to the command'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l no-cwd -d 'Leave the working directory out of the key'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -l no-program -d 'Leave the program\'s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand clear" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l name -d 'Only this namespace' -r
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l format -d 'Output format: a table, JSON, or OpenMetrics text for Prometheus (node_exporter\'s textfile collector)' -r -f -a "table\t''
json\t''
openmetrics\t''"
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand stats" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l json -d 'Machine-readable output (same as --format json)'
complete -c cachier -n "__fish_cachier_using_subcommand stats" -l reset -d 'Zero the hit, miss, wait and stale-serve counters'
complete -c cachier -n "__fish_cachier_using_subcommand stats" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand stats" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l name -d 'Only this namespace' -r
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand ls" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand ls" -l json -d 'Machine-readable output'
complete -c cachier -n "__fish_cachier_using_subcommand ls" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand ls" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand show" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand show" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand show" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand show" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand show" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand show" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand show" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand show" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand show" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand show" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand show" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand show" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand show" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand show" -l stdout -d 'Print the stored stdout, byte for byte'
complete -c cachier -n "__fish_cachier_using_subcommand show" -l stderr -d 'Print the stored stderr, byte for byte'
complete -c cachier -n "__fish_cachier_using_subcommand show" -l json -d 'Print the metadata as JSON'
complete -c cachier -n "__fish_cachier_using_subcommand show" -l outputs -d 'List the stored --output files: kind, mode, size, path (with --json, as JSON; each path as {"text": ...}, or {"bytes": BASE64} when it is not UTF-8)'
complete -c cachier -n "__fish_cachier_using_subcommand show" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand show" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l stdout -d 'File holding the stdout to store (`-` for standard input)' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l stderr -d 'File holding the stderr to store' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l exit-code -d 'The exit code to store' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l env -d 'Key on this environment variable (repeatable; globs such as \'AWS_*\')' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l input -d 'Key on a file, directory (walked recursively, skipping .git/ and what .gitignore and .ignore exclude) or glob (repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l output -d 'Store and restore the files the command makes: a file, directory or glob under the working directory (\'!GLOB\' excludes; repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l key -d 'Extra key material, e.g. a commit or a version tag (repeatable)' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l name -d 'Namespace for stats, ls and clear [default: the program\'s base name]' -r
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l all-env -d 'Key on every environment variable except volatile ones (PWD, OLDPWD, SHLVL, _, ...)'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l no-ignore -d 'Walk --input directories and globs whole: .git/ and ignored files count too'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l stdin -d 'Read standard input whole, key on it and feed it to the command'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l no-cwd -d 'Leave the working directory out of the key'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -l no-program -d 'Leave the program\'s content out of the key (./tool, or the script in python3 x.py); it stays keyed by name'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand precache" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand export" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand export" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l name -d 'Only this namespace' -r
complete -c cachier -n "__fish_cachier_using_subcommand export" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand export" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand export" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand export" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand export" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand import" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand import" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand import" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand import" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand import" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand import" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand import" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand import" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand import" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand import" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand import" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand import" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand import" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand import" -l sign -d 'Sign every entry not already signed by a trusted key with your signing key, instead of refusing it'
complete -c cachier -n "__fish_cachier_using_subcommand import" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand import" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l max-size -d 'Evict down to this size instead of the configured max_size (e.g. 500M)' -r
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand gc" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand gc" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand gc" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand gc" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand path" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand path" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand path" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand path" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand path" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand path" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand path" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand path" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand path" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand path" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand path" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand path" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand path" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand path" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand path" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -f -a "get" -d 'Print one setting\'s value from the config file'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -f -a "set" -d 'Set a setting in the config file'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -f -a "unset" -d 'Remove a setting from the config file'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -f -a "list" -d 'Print every setting in the config file'
complete -c cachier -n "__fish_cachier_using_subcommand config; and not __fish_seen_subcommand_from get set unset list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from unset" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "get" -d 'Print one setting\'s value from the config file'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "set" -d 'Set a setting in the config file'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "unset" -d 'Remove a setting from the config file'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "list" -d 'Print every setting in the config file'
complete -c cachier -n "__fish_cachier_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -f -a "start" -d 'Start the daemon in the background, unless it runs already'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -f -a "stop" -d 'Stop the daemon; the entries it holds are gone'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -f -a "status" -d 'Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -f -a "serve" -d 'Run the daemon in the foreground (what `start` and first uses spawn)'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -f -a "debug-age" -d 'Test only: make every entry MS milliseconds older'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -f -a "debug-damage" -d 'Test only: damage every entry (flip its first byte, or --truncate it)'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and not __fish_seen_subcommand_from start stop status serve debug-age debug-damage help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l idle-timeout -d 'Exit after this long without requests [env: CACHIER_IDLE_TIMEOUT] [default: 15m]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from start" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from stop" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l json -d 'Machine-readable output'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l idle-timeout -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from serve" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-age" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l truncate
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from debug-damage" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "start" -d 'Start the daemon in the background, unless it runs already'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "stop" -d 'Stop the daemon; the entries it holds are gone'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "status" -d 'Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "serve" -d 'Run the daemon in the foreground (what `start` and first uses spawn)'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "debug-age" -d 'Test only: make every entry MS milliseconds older'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "debug-damage" -d 'Test only: damage every entry (flip its first byte, or --truncate it)'
complete -c cachier -n "__fish_cachier_using_subcommand daemon; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l backend -d 'Where entries are kept: file (alias pickle), sql, redis, mongo or memory; a comma-separated list stacks tiers, looked up in order (memory,redis,sql) [env: CACHIER_BACKEND]' -r
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l tier -d 'With a tiered --backend, act on this tier only (stats, ls, clear, export, ...)' -r
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l cache-dir -d 'Cache directory of the file store [env: CACHIER_DIR] [default: ~/.cache/cachier]' -r -F
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l sql-url -d 'The sql backend\'s database: sqlite:///path.db or postgresql://user:pass@host:port/db [env: CACHIER_SQL_URL] [default: SQLite at <cache dir>/cachier.db]' -r
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l redis-url -d 'The redis backend\'s server: redis://[user:pass@]host:port/db (rediss:// for TLS); a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l mongo-url -d 'The mongo backend\'s server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l mongo-collection -d 'The mongo backend\'s collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]' -r
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l s3-url -d 'The s3 backend\'s bucket and prefix: s3://BUCKET/PREFIX [env: CACHIER_S3_URL]' -r
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l s3-endpoint -d 'The s3 backend\'s endpoint, for S3-compatible stores (http://host:port) [env: CACHIER_S3_ENDPOINT, else AWS_ENDPOINT_URL] [default: AWS in the region]' -r
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l max-memory -d 'The memory daemon\'s RAM cap, least recently used entries evicted past it [env: CACHIER_MAX_MEMORY] [default: 512M]' -r
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l strict -d 'Turn cache problems into errors (exit 125) instead of running uncached'
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -l read-only -d 'Serve hits but write nothing: no entry, counter, claim or schema [env: CACHIER_READ_ONLY]'
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -s v -l verbose -d 'Say on stderr whether a run hit or missed, and why it waited'
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c cachier -n "__fish_cachier_using_subcommand keygen" -s V -l version -d 'Print version'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "run" -d 'Run a command, or replay its stored result'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "key" -d 'Print the key a command line maps to (--explain: every component)'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "clear" -d 'Remove entries: all, or those matching the filters or a command line'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "stats" -d 'Entries, bytes, hits, misses, waits and time saved, per namespace'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "ls" -d 'List entries: key, namespace, argv, age, size, exit code, hits'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "show" -d 'Print an entry\'s stdout, stderr or metadata'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "precache" -d 'Store a given result, as if the command had run'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "export" -d 'Write entries to stdout in a portable, versioned stream'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "import" -d 'Read entries written by `cachier export` from stdin'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "gc" -d 'Evict least-recently-used entries down to max_size'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "path" -d 'Print where the cache lives'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "config" -d 'Read and edit the config file'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "daemon" -d 'Start, stop or inspect the memory backend\'s per-user daemon'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "keygen" -d 'Make an Ed25519 key pair for signed entries; print the public key'
complete -c cachier -n "__fish_cachier_using_subcommand help; and not __fish_seen_subcommand_from run key clear stats ls show precache export import gc path config daemon keygen help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "get" -d 'Print one setting\'s value from the config file'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "set" -d 'Set a setting in the config file'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "unset" -d 'Remove a setting from the config file'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "list" -d 'Print every setting in the config file'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "start" -d 'Start the daemon in the background, unless it runs already'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "stop" -d 'Stop the daemon; the entries it holds are gone'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "status" -d 'Pid, uptime, entries, bytes and hits of the running daemon (exit 3 if none runs)'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "serve" -d 'Run the daemon in the foreground (what `start` and first uses spawn)'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "debug-age" -d 'Test only: make every entry MS milliseconds older'
complete -c cachier -n "__fish_cachier_using_subcommand help; and __fish_seen_subcommand_from daemon" -f -a "debug-damage" -d 'Test only: damage every entry (flip its first byte, or --truncate it)'
