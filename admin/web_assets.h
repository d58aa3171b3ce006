/*
 * The control panel's static files, embedded at build time from admin/assets/ by
 * admin/assets/embed.cmake. The table is immutable and lives for the whole process.
 */
#pragma once

#include <stddef.h>

typedef struct {
    const char *path; /* "/app.js": the file name under admin/assets/ */
    const char *content_type;
    const unsigned char *data;
    size_t len; /* data[len] is a NUL not counted in len */
} web_asset_t;

/* Terminated by an entry whose path is NULL. */
extern const web_asset_t web_assets[];

/* The asset served at `path`, or NULL. */
const web_asset_t *web_assets_find(const char *path);
