#include "tls_test_pki.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

static char pki_dir[512];

int tls_test_pki_create(void)
{
    const char *src = getenv("FEDGATE_SOURCE_DIR");
    const char *bin = getenv("FEDGATE_BINARY_DIR");
    char cmd[2048];
    snprintf(pki_dir, sizeof pki_dir, "%s/tls-pki-XXXXXX", bin ? bin : "/tmp");
    if (!mkdtemp(pki_dir))
        return -1;
    snprintf(cmd, sizeof cmd, "sh '%s/tests/data/mkcerts.sh' '%s' >/dev/null", src ? src : ".",
             pki_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

void tls_test_pki_remove(void)
{
    if (pki_dir[0])
        nftw(pki_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    pki_dir[0] = '\0';
}

const char *tls_test_pki_path(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", pki_dir, name);
    return path;
}

const char *tls_test_pki_path2(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", pki_dir, name);
    return path;
}

int tls_test_pki_der(const char *name, uint8_t *der, size_t cap)
{
    char path[1024];
    static unsigned char pem[65536];
    snprintf(path, sizeof path, "%s/%s.pem", pki_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(pem, 1, sizeof pem - 1, f);
    fclose(f);
    int r = wolfSSL_CertPemToDer(pem, (int)n, der, (int)cap, CERT_TYPE);
    return r > 0 ? r : -1;
}
