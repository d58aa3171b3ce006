/*
 * Internals of the ledger shared by ledger.c (queue, writer thread) and store_ledger.c (the LMDB
 * side: only store*.c files include lmdb.h). Not a public header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/ledger.h"

typedef enum {
    LEDGER_OP_INVITE = 1,
    LEDGER_OP_ANSWER = 2,
    LEDGER_OP_REMOVE = 3,
    LEDGER_OP_PURGE = 4,
    LEDGER_OP_MESSAGE = 5,
} ledger_op_kind_t;

/* One queued operation; fixed size so the queue is one array with no allocation per post. */
typedef struct {
    uint8_t kind;
    uint16_t klen;
    int64_t t; /* invite/answer: now; purge: cutoff */
    char key[LEDGER_KEY_MAX];
} ledger_op_t;

typedef struct ledger_db ledger_db_t;

/* A write handle on the store's ledger database (creates it when missing). */
int ledger_db_open(const char *dir, ledger_db_t **out);
void ledger_db_close(ledger_db_t *d);
/* Applies ops[0..n) in order in ONE write transaction and commits it (fsync'ed). */
int ledger_db_apply(ledger_db_t *d, const ledger_op_t *ops, size_t n);
