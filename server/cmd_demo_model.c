/* cmd_demo_model.c — `maasd demo-model PATH`: write the built-in demo model
 * (random weights, a real byte-level vocabulary, ChatML) as a GGUF file, to
 * try the model registry or any GGUF tool with a file that needs no
 * download. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/demo_model.h"
#include "server/cli.h"

int cmd_demo_model(int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "usage: maasd demo-model PATH\n");
        return 2;
    }
    void *buf = NULL;
    size_t len = 0;
    struct err e = {0};
    if (!demo_model_gguf(&buf, &len, &e))
        return cli_fail(&e);
    FILE *f = fopen(argv[0], "wb");
    bool ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = false;
    free(buf);
    if (!ok) {
        err_set(&e, ERR_IO, "cannot write '%s'", argv[0]);
        return cli_fail(&e);
    }
    return 0;
}
