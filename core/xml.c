/* Stub: the implementation follows. */
#include "core/xml.h"

#include "core/err.h"

int xml_parser_new(xml_parser_t **out, const stream_limits_t *limits, xml_handler_t handler,
                   void *ctx)
{
    *out = NULL;
    return -ENOSYS;
}
void xml_parser_free(xml_parser_t *p)
{
}
int xml_feed(xml_parser_t *p, const void *data, size_t len, size_t *consumed)
{
    return -ENOSYS;
}
int xml_reset(xml_parser_t *p)
{
    return -ENOSYS;
}
void xml_set_max_stanza(xml_parser_t *p, uint32_t max_bytes)
{
}
uint32_t xml_max_stanza(const xml_parser_t *p)
{
    return 0;
}
xml_reason_t xml_error(const xml_parser_t *p)
{
    return XML_REASON_NOMEM;
}
const char *xml_error_detail(const xml_parser_t *p)
{
    return "not implemented";
}
const char *xml_reason_condition(xml_reason_t r)
{
    return NULL;
}
const char *xml_reason_name(xml_reason_t r)
{
    return "none";
}
const stanza_t *xml_stream_header(const xml_parser_t *p)
{
    return NULL;
}
bool xml_stream_open(const xml_parser_t *p)
{
    return false;
}
void xml_stats(const xml_parser_t *p, xml_stats_t *out)
{
}
