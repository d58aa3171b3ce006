/* Stub: the implementation follows. */
#include "core/jid.h"

#include "core/err.h"

int jid_parse(const char *s, size_t len, jid_t *out)
{
    return FG_EPARSE;
}
int jid_parse_str(const char *s, jid_t *out)
{
    return FG_EPARSE;
}
int jid_domain_check(const char *d, size_t len)
{
    return FG_EPARSE;
}
size_t jid_domain_len_noroot(const char *d, size_t len)
{
    return len;
}
bool jid_domain_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    return false;
}
bool jid_domain_equal_str(const char *a, const char *b)
{
    return false;
}
bool jid_is_domain(const jid_t *j)
{
    return false;
}
int jid_bare(const jid_t *j, char *out, size_t size)
{
    return FG_ELIMIT;
}
int jid_domain(const jid_t *j, char *out, size_t size)
{
    return FG_ELIMIT;
}
