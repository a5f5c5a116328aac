"""Small tools every other package uses; none of them knows about models or audio.

errors.py    PipelineError, the one exception for bad input; run_stage, first_line, printable, exit_now
atomic.py    files written whole or not at all: atomic_path, write_json, write_text, save_torch
procs.py     processes and ports: pid_alive, same_process, free_port, answers, started
urls.py      URLs and their secrets: secret_in, expand (and redaction's redact)
redaction.py passwords out of messages: redact, scrub, remember
download.py  fetch a file from a URL or a path: timeout, retries, progress, SHA-256
hashing.py   sha256_file, the one file hash
safeyaml.py  YAML read with a budget on its aliases, one-line errors
tables.py    plain-text tables: cell, WIDTH
numerics.py  the same floats on every machine: pin, the kernels chosen before torch loads
"""
