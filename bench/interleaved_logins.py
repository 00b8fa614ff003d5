#!/usr/bin/env python3
"""Logins into two servers, interleaved one by one, so that the machine's drift slows both alike.

Usage: interleaved_logins.py LIBPQ CONNINFO_A CONNINFO_B PAIRS CLIENTS

Each of CLIENTS processes makes PAIRS pairs of logins, one into A and one into B (the order
swapped every pair), each a new connection through libpq (the server's own LIBPQ, loaded with
ctypes: nothing to install), SELECT 1, close, timed alone. Prints "A_per_s B_per_s ratio": the
logins per second each server would take from CLIENTS such clients, and B's time per login
over A's (A's logins/s over B's). A host whose speed drifts by tens of percent within seconds
spreads runs of pgbench a few seconds apart that much; logins a millisecond apart it slows
alike.
"""
import ctypes
import multiprocessing
import sys
import time


def client(libpq, conninfo_a, conninfo_b, pairs, results):
    lib = ctypes.CDLL(libpq)
    lib.PQconnectdb.restype = ctypes.c_void_p
    lib.PQconnectdb.argtypes = [ctypes.c_char_p]
    lib.PQstatus.argtypes = [ctypes.c_void_p]
    lib.PQerrorMessage.restype = ctypes.c_char_p
    lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
    lib.PQexec.restype = ctypes.c_void_p
    lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.PQresultStatus.argtypes = [ctypes.c_void_p]
    lib.PQclear.argtypes = [ctypes.c_void_p]
    lib.PQfinish.argtypes = [ctypes.c_void_p]
    connection_ok, tuples_ok = 0, 2

    def login(conninfo):
        started = time.perf_counter_ns()
        connection = lib.PQconnectdb(conninfo)
        if lib.PQstatus(connection) != connection_ok:
            raise SystemExit(f"login failed: {lib.PQerrorMessage(connection).decode().strip()}")
        result = lib.PQexec(connection, b"SELECT 1")
        if lib.PQresultStatus(result) != tuples_ok:
            raise SystemExit(f"SELECT 1 failed: {lib.PQerrorMessage(connection).decode().strip()}")
        lib.PQclear(result)
        lib.PQfinish(connection)
        return time.perf_counter_ns() - started

    a, b = conninfo_a.encode(), conninfo_b.encode()
    spent_a = spent_b = 0
    for pair in range(pairs):
        if pair % 2:
            spent_a += login(a)
            spent_b += login(b)
        else:
            spent_b += login(b)
            spent_a += login(a)
    results.put((spent_a, spent_b))


def main():
    libpq, conninfo_a, conninfo_b = sys.argv[1:4]
    pairs, clients = int(sys.argv[4]), int(sys.argv[5])
    results = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=client, args=(libpq, conninfo_a, conninfo_b, pairs, results))
                 for _ in range(clients)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()  # (a result is two numbers: the queue's pipe holds it without a reader)
    if any(process.exitcode != 0 for process in processes):
        raise SystemExit("a client failed")
    spent = [results.get() for _ in processes]
    spent_a = sum(s[0] for s in spent)
    spent_b = sum(s[1] for s in spent)
    # Each client spent spent_x / clients on average in x's logins, pairs of them.
    per_s = lambda total: clients * clients * pairs * 1e9 / total
    print(f"{per_s(spent_a):.1f} {per_s(spent_b):.1f} {spent_b / spent_a:.4f}")


if __name__ == "__main__":
    main()
