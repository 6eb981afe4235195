/* fuzz_oai_request.c — arbitrary HTTP bodies through the OpenAI request
 * parser for each endpoint: it must return a request or an error, never
 * crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "api/oai_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int ep = OAI_CHAT_COMPLETIONS; ep <= OAI_EMBEDDINGS; ep++) {
        struct oai_request r;
        struct err e;
        if (oai_request_parse((enum oai_endpoint)ep, (const char *)data, size, &r, &e))
            oai_request_free(&r);
    }
    return 0;
}
