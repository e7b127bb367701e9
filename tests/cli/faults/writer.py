"""The crash harness's command: argv SEED OUT ERR CODE.

Appends its pid to the file named by $COUNT (one line per execution), then
writes OUT bytes to stdout and ERR bytes to stderr, interleaved in chunks
of random sizes, and exits with CODE. Bytes and chunking derive from SEED
alone, so a replay can be checked byte for byte against a direct run.
"""
import os
import random
import sys

seed, out_len, err_len, code = (int(a) for a in sys.argv[1:5])
count = os.environ.get("COUNT")
if count:
    with open(count, "a") as f:
        f.write(f"{os.getpid()}\n")
rng = random.Random(seed)
left = {1: out_len, 2: err_len}
while left[1] or left[2]:
    fd = rng.choice([fd for fd in (1, 2) if left[fd]])
    n = min(left[fd], rng.randint(1, 256 * 1024))
    view = memoryview(rng.randbytes(n))
    while view:
        view = view[os.write(fd, view):]
    left[fd] -= n
sys.exit(code)
