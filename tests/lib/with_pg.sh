#!/usr/bin/env bash
# Runs one test program against a throwaway PostgreSQL cluster: with_pg.sh PROGRAM [ARGS...]
# The program finds the server through VIGIL_TEST_CONNINFO (and the usual PG* variables).
source "$(dirname "$0")/harness.sh"
harness_init
pg_start
VIGIL_TEST_CONNINFO=$TEST_CONNINFO "$@"
