#include "core/err.h"

#include <string.h>

static const char *const fg_messages[] = {
    [-(FG_ELIMIT - FG_ERR_MIN)] = "limit reached",
    [-(FG_EPARSE - FG_ERR_MIN)] = "malformed input",
    [-(FG_EDOMAIN - FG_ERR_MIN)] = "invalid domain name",
    [-(FG_ECONFLICT - FG_ERR_MIN)] = "already in use",
    [-(FG_EREFUSED - FG_ERR_MIN)] = "refused",
    [-(FG_ESTALE - FG_ERR_MIN)] = "changed by someone else",
    [-(FG_ESTORE - FG_ERR_MIN)] = "store failure",
    [-(FG_ESPACE - FG_ERR_MIN)] = "store is full",
    [-(FG_EVERSION - FG_ERR_MIN)] = "unsupported version",
    [-(FG_ETLS - FG_ERR_MIN)] = "TLS failure",
    [-(FG_EPROTO - FG_ERR_MIN)] = "protocol violation",
    [-(FG_EAUTH - FG_ERR_MIN)] = "authentication failed",
    [-(FG_ENOTFOUND - FG_ERR_MIN)] = "not found",
};

const char *fg_strerror(int err)
{
    if (err == FG_OK)
        return "ok";
    if (err < FG_ERR_MIN && err > FG_ERR_MAX_)
        return fg_messages[-(err - FG_ERR_MIN)];
    if (err < 0 && err > FG_ERR_MIN)
        return strerror(-err); /* glibc's strerror returns static text for valid errnos */
    return "unknown error";
}
