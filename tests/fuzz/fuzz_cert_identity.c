/*
 * The certificate identity parser reads DER that a peer chose (the certificate it presents), so it
 * gets hostile input: any byte string must parse or fail cleanly, and whatever parses must be
 * safe to match and flatten.
 */
#include <stddef.h>
#include <stdint.h>

#include "tls/tls_identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tls_identities_t ids;
    if (tls_identity_parse(data, size, &ids) != 0)
        return 0;
    const char *names[16];
    (void)tls_identity_flatten(&ids, names, 16);
    (void)tls_identity_matches(&ids, "a.example");
    (void)tls_identity_matches(&ids, "xn--bcher-kva.example");
    tls_identities_free(&ids);
    return 0;
}
