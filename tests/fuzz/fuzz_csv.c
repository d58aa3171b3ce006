/*
 * libFuzzer harness for the PowerShell CSV reader of fedgate-admin (admin/cli_csv.c): any input
 * is either refused with FG_EPARSE at a line inside the input, or yields records whose fields are
 * within the limits and whose line numbers grow and stay inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/cli_csv.c" /* the reader is a leaf module of admin/; no fg_admin link needed */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    size_t last_line;
    size_t max_line;
} fuzz_state_t;

static int check_row(void *ctx, size_t line, size_t n, const char *const *fields)
{
    fuzz_state_t *st = ctx;
    if (n == 0 || n > CLI_CSV_MAX_FIELDS)
        abort();
    if (line <= st->last_line || line > st->max_line)
        abort();
    st->last_line = line;
    for (size_t i = 0; i < n; i++)
        if (strlen(fields[i]) > CLI_CSV_MAX_FIELD)
            abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_state_t st = {0, 1};
    for (size_t i = 0; i < size; i++)
        st.max_line += data[i] == '\n';
    size_t bad = 0;
    char *utf8 = NULL;
    size_t n = 0;
    if (cli_csv_utf16_to_utf8((const char *)data, size, &utf8, &n) == 0) {
        /* Converted input is parsed as the importer would; its own line count applies. */
        fuzz_state_t st8 = {0, 1};
        for (size_t i = 0; i < n; i++)
            st8.max_line += utf8[i] == '\n';
        if (strlen(utf8) > n)
            abort();
        int rc8 = cli_csv_parse(utf8, n, check_row, &st8, &bad);
        free(utf8);
        if (rc8 != 0 && rc8 != FG_EPARSE)
            abort();
        return 0;
    }
    int rc = cli_csv_parse((const char *)data, size, check_row, &st, &bad);
    if (rc != 0 && rc != FG_EPARSE && rc != -ENOMEM)
        abort();
    if (rc == FG_EPARSE && (bad == 0 || bad > st.max_line))
        abort();
    return 0;
}
