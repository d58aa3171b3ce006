/*
 * Bounded byte buffer. Every buffer in fedgate has a maximum: a peer that sends or withholds
 * data hits FG_ELIMIT, which the caller turns into a protocol error, long before memory runs out.
 *
 * Ownership: the buf_t owns `data`; buf_free() releases it. Pointers into `data` are borrowed and
 * become invalid after any call that may grow the buffer (buf_append, buf_reserve).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data;
    size_t len; /* bytes held, starting at data */
    size_t cap; /* bytes allocated */
    size_t max; /* cap never grows past this */
} buf_t;

void buf_init(buf_t *b, size_t max);
void buf_free(buf_t *b);
/* Make room for `extra` more bytes. 0, FG_ELIMIT past max, -ENOMEM. */
int buf_reserve(buf_t *b, size_t extra);
/* Append bytes. 0, FG_ELIMIT, -ENOMEM; on error the buffer is unchanged. */
int buf_append(buf_t *b, const void *src, size_t n);
/* Append a NUL-terminated string (without the NUL). */
int buf_append_str(buf_t *b, const char *s);
/* Drop the first n bytes (n <= len). */
void buf_consume(buf_t *b, size_t n);
static inline void buf_reset(buf_t *b)
{
    b->len = 0;
}
