#include "admin/web_assets.h"

#include <string.h>

const web_asset_t *web_assets_find(const char *path)
{
    for (const web_asset_t *a = web_assets; a->path; a++)
        if (strcmp(a->path, path) == 0)
            return a;
    return NULL;
}
