/* cmd_tokenize.c — `maasd tokenize --model PATH [--ids] [--special]
 * [--no-bos] TEXT`: what the model's tokenizer makes of a text.
 *
 * Default output is one token per line, "id<TAB>piece", the piece escaped so
 * that control characters, partial UTF-8 and special tokens stay visible;
 * --ids prints the ids on one line instead. BOS/EOS are added as the model
 * asks (add_bos_token / add_eos_token) unless --no-bos; --special makes
 * special-token texts in TEXT (e.g. <|im_start|>) their ids. TEXT "-" reads
 * standard input. Works with vocabulary-only GGUF files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "server/cli.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: maasd tokenize --model PATH [--ids] [--special] [--no-bos] TEXT|-\n");
    return 2;
}

/* A piece as printable text: valid UTF-8 passes, everything else is
 * escaped. */
static void print_piece(FILE *out, struct gguf_str p)
{
    const unsigned char *s = (const unsigned char *)p.ptr;
    for (uint64_t i = 0; i < p.len;) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                             : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        bool whole = n > 0 && i + n <= p.len;
        for (size_t k = 1; whole && k < n; k++)
            whole = (s[i + k] & 0xc0) == 0x80;
        if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (c == '\\') {
            fputs("\\\\", out);
        } else if (!whole || c < 0x20 || c == 0x7f) {
            fprintf(out, "\\x%02x", c);
            n = 1;
        } else {
            fwrite(s + i, 1, n, out);
        }
        i += n ? n : 1;
    }
}

static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap)
            break;
        char *more = realloc(buf, cap *= 2);
        if (!more)
            free(buf);
        buf = more;
    }
    *len = n;
    return buf;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    bool ids_only = false, special = false, bos = true;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else if (strncmp(argv[i], "--model=", 8) == 0)
            model = argv[i] + 8;
        else if (strcmp(argv[i], "--ids") == 0)
            ids_only = true;
        else if (strcmp(argv[i], "--special") == 0)
            special = true;
        else if (strcmp(argv[i], "--no-bos") == 0)
            bos = false;
        else if (!text && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
            text = argv[i];
        else
            return usage();
    }
    if (!model || !text)
        return usage();

    size_t len = strlen(text);
    char *owned = NULL;
    if (strcmp(text, "-") == 0) {
        if (!(owned = read_stdin(&len))) {
            struct err e;
            err_set(&e, ERR_NOMEM, "out of memory reading standard input");
            return cli_fail(&e);
        }
        text = owned;
    }
    struct gguf_file *g = NULL;
    struct tokenizer *t = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    struct err e = {0};
    unsigned flags = (bos ? TOKENIZER_ADD_SPECIAL : 0) | (special ? TOKENIZER_PARSE_SPECIAL : 0);
    bool ok = gguf_open(model, &g, &e); /* its errors name the path */
    if (ok && !(tokenizer_load(g, &t, &e) && tokenizer_encode(t, text, len, flags, &ids, &n, &e))) {
        err_wrap(&e, "%s", model);
        ok = false;
    }
    if (ok) {
        for (size_t i = 0; i < n; i++) {
            if (ids_only) {
                printf(i ? " %d" : "%d", ids[i]);
                continue;
            }
            printf("%d\t", ids[i]);
            print_piece(stdout, tokenizer_token_piece(t, ids[i], TOKENIZER_RENDER_SPECIAL));
            putchar('\n');
        }
        if (ids_only)
            putchar('\n');
    }
    free(ids);
    tokenizer_free(t);
    gguf_close(g);
    free(owned);
    return ok ? 0 : cli_fail(&e);
}
