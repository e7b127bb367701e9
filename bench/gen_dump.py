#!/usr/bin/env python3
"""bench/gen_dump.py N TEMPLATE_ENTRY > dump — a `cachier import` dump of N
entries made from one real entry file of the file store: the same output
and metadata, each with its own key and its own command line (`echo I`).
Lets bench/management.sh fill a store of a million entries through the real
write path (`cachier import`) in a minute or two instead of a million
precache processes. Format: src/dump/mod.rs. Needs the blake3 module."""
import struct
import sys

import blake3

MAGIC = b"cachier-dump\n"
VERSION = 2
TRAILER = 12  # meta length u32 + 8-byte magic


def template(path):
    data = open(path, "rb").read()
    if data[-8:] != b"cachier\x01":
        sys.exit(f"gen_dump: {path} is not an entry file of format 1")
    meta_len = struct.unpack("<I", data[-TRAILER:-8])[0]
    meta = data[-TRAILER - meta_len:-TRAILER]
    body = data[:-TRAILER - meta_len]
    return meta, body


def split(meta):
    """The metadata around its key and around its argv's last word."""
    key_at = meta.index(b"ckeyX\x20") + 6
    argv_at = meta.index(b"dargv\x82Decho") + len(b"dargv\x82Decho")
    word_len = meta[argv_at] - 0x40
    if not 0 <= word_len < 24 or argv_at < key_at:
        sys.exit("gen_dump: the template's command line is not `echo WORD`")
    return meta[:key_at], meta[key_at + 32:argv_at], meta[argv_at + 1 + word_len:]


def main():
    n, path = int(sys.argv[1]), sys.argv[2]
    meta, body = template(path)
    before_key, before_word, after_word = split(meta)
    out = sys.stdout.buffer
    out.write(MAGIC + bytes([VERSION]))
    chunk = []
    for i in range(1, n + 1):
        word = str(i).encode()
        key = blake3.blake3(b"bench1m:" + word).digest()
        m = before_key + key + before_word + bytes([0x40 + len(word)]) + word + after_word
        head = b"E" + struct.pack("<I", len(m)) + m
        chunk.append(head + blake3.blake3(head).digest() + body)
        if len(chunk) == 4096:
            out.write(b"".join(chunk))
            chunk = []
    out.write(b"".join(chunk))
    end = b"Z" + struct.pack("<Q", n)
    out.write(end + blake3.blake3(end).digest())


if __name__ == "__main__":
    main()
