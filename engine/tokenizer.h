/*
 * tokenizer.h — text <-> token ids from a GGUF file's tokenizer metadata,
 * matching llama.cpp's tokenizers token for token.
 *
 * Contract
 *   tokenizer_load() reads `tokenizer.ggml.*` from an open gguf_file and
 *   builds everything up front (hash maps for text -> id and merge ranks,
 *   compiled pre-tokenizer regexes, a decoded piece per token). Two kinds:
 *
 *   - SentencePiece-style (`tokenizer.ggml.model = llama`): the text gets a
 *     dummy-prefix space (`add_space_prefix`, default on), spaces become
 *     U+2581, then the best-scoring adjacent pair is merged repeatedly;
 *     characters left without a token fall back to `<0xAB>` byte tokens, or
 *     `<unk>` when the vocabulary has none. (A literal U+2581 in the input
 *     decodes as a space, as with SentencePiece.)
 *   - Byte-level BPE (`gpt2`): the text is split by the pre-tokenizer named in
 *     `tokenizer.ggml.pre` (PCRE2, Unicode properties), each piece is mapped
 *     through GPT-2's byte-to-unicode table and merged by `merges` rank
 *     (no `merges` key: no merges, each byte its own token)
 *     (a byte the vocabulary has no token for is dropped, as in llama.cpp;
 *     falcon's, mpt's and starcoder's vocabularies lack a few).
 *     Supported pre-tokenizers: default (also when the key is absent),
 *     gpt-2 (and phi-2, roberta-bpe, jina-*), llama3 (llama-v3, llama-bpe,
 *     falcon3, dbrx, smaug-bpe, chatglm-bpe, glm4), qwen2 (deepseek-r1-qwen,
 *     megrez, stablelm2), deepseek-llm, deepseek-coder, falcon, mpt, olmo,
 *     jais, starcoder, refact, smollm, command-r, codeshell, exaone,
 *     minerva-7b, bloom, poro-chat, gpt3-finnish, viking. Any other name is
 *     refused with ERR_UNSUPPORTED (a silently wrong split would produce
 *     plausible but degraded output). Invalid UTF-8 in BPE input becomes
 *     U+FFFD before splitting, as llama.cpp does; SPM input is taken as bytes
 *     (byte fallback keeps invalid bytes exactly).
 *
 *   Other tokenizer models (bert, t5, rwkv, ...) fail with ERR_UNSUPPORTED.
 *   Malformed metadata (wrong array types or lengths) fails with ERR_CORRUPT
 *   naming the key.
 *
 *   Special tokens follow llama.cpp: control (token_type 3), user-defined (4)
 *   and unknown (2) tokens are matched in the input as whole strings, longest
 *   first, before any other processing — user-defined ones always, control
 *   and unknown ones only with TOKENIZER_PARSE_SPECIAL. Tokens with the usual
 *   end-of-turn texts (<|eot_id|>, <|im_end|>, <|end|>, <|endoftext|>,
 *   <end_of_turn>, ...) are treated as control tokens and as end of
 *   generation, whatever the file says, as llama.cpp does.
 *
 *   Decoding renders control and unknown tokens as nothing unless
 *   TOKENIZER_RENDER_SPECIAL; user-defined tokens as their text; BPE tokens
 *   through the reverse byte map (characters outside it pass through as
 *   UTF-8); SPM U+2581 as a space and byte tokens as their byte. Unlike
 *   llama.cpp's detokenizer, no "clean-up" of spaces before punctuation is
 *   done: pieces concatenate exactly.
 *
 * Ownership
 *   The tokenizer copies what it needs: it keeps NO pointer into the GGUF
 *   mapping, and the gguf_file may be closed after load. Strings returned by
 *   the accessors point into the tokenizer and live until tokenizer_free().
 *   tokenizer_encode() and tokenizer_decode() return malloc'ed buffers the
 *   caller frees.
 *
 * Threads
 *   Immutable after load: any number of threads may encode, decode and query
 *   one tokenizer at once (each call allocates its own scratch). A
 *   tokenizer_stream belongs to one sequence and one thread at a time.
 */
#ifndef MAASD_TOKENIZER_H
#define MAASD_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/gguf.h"

#define TOKENIZER_NONE (-1) /* no such token (e.g. a model without PAD) */

enum tokenizer_kind {
    TOKENIZER_SPM = 1, /* tokenizer.ggml.model = llama */
    TOKENIZER_BPE = 2, /* tokenizer.ggml.model = gpt2 */
};

/* Per-token attributes (llama.cpp's), from tokenizer.ggml.token_type: 1
 * normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; anything
 * else is undefined (0). Absent token_type: every token is normal. */
enum tokenizer_attr {
    TOKENIZER_ATTR_NORMAL = 1 << 0,
    TOKENIZER_ATTR_UNKNOWN = 1 << 1,
    TOKENIZER_ATTR_CONTROL = 1 << 2,
    TOKENIZER_ATTR_USER_DEFINED = 1 << 3,
    TOKENIZER_ATTR_UNUSED = 1 << 4,
    TOKENIZER_ATTR_BYTE = 1 << 5,
    TOKENIZER_ATTR_LSTRIP = 1 << 6, /* matching eats whitespace before it */
    TOKENIZER_ATTR_RSTRIP = 1 << 7, /* ... and after it (phi-3's specials) */
};

/* tokenizer_encode() flags */
#define TOKENIZER_ADD_SPECIAL 0x1   /* BOS/EOS as add_bos_token/add_eos_token say */
#define TOKENIZER_PARSE_SPECIAL 0x2 /* control token texts in the input become their ids */
/* decoding flags (tokenizer_token_piece, streams, tokenizer_decode) */
#define TOKENIZER_RENDER_SPECIAL 0x4 /* control/unknown tokens render as their text */
/* Strip one space from the start of the first non-empty piece: the SPM
 * dummy prefix, when decoding a sequence from the start of the prompt. */
#define TOKENIZER_STRIP_LEADING_SPACE 0x8

struct tokenizer;

bool tokenizer_load(const struct gguf_file *g, struct tokenizer **out, struct err *e);
void tokenizer_free(struct tokenizer *t);

enum tokenizer_kind tokenizer_kind(const struct tokenizer *t);
/* The BPE pre-tokenizer name as given in the file ("default" when absent);
 * "" for SPM. */
const char *tokenizer_pre_name(const struct tokenizer *t);
uint32_t tokenizer_n_vocab(const struct tokenizer *t);

/* Special ids, TOKENIZER_NONE when the model has none. Defaults when the
 * key is absent: SPM BOS 1, EOS 2, UNK 0; BPE none. EOT is taken from the
 * key or found by text (<|eot_id|>, <|im_end|>, ... first in that order). */
int32_t tokenizer_bos(const struct tokenizer *t);
int32_t tokenizer_eos(const struct tokenizer *t);
int32_t tokenizer_eot(const struct tokenizer *t);
int32_t tokenizer_pad(const struct tokenizer *t);
int32_t tokenizer_unk(const struct tokenizer *t);
/* Whether TOKENIZER_ADD_SPECIAL adds BOS / EOS (add_bos_token /
 * add_eos_token; defaults: SPM and llama3-style BPE add BOS). */
bool tokenizer_adds_bos(const struct tokenizer *t);
bool tokenizer_adds_eos(const struct tokenizer *t);

/* Does this token end generation (EOS, EOT, EOM, <|im_end|>, ...)? False for
 * ids outside the vocabulary. */
bool tokenizer_is_eog(const struct tokenizer *t, int32_t id);
/* enum tokenizer_attr bits; 0 for ids outside the vocabulary. */
unsigned tokenizer_token_attr(const struct tokenizer *t, int32_t id);
/* The token's vocabulary string (empty ones read "[EMPTY_<id>]" as in
 * llama.cpp); empty for ids outside the vocabulary. */
struct gguf_str tokenizer_token_text(const struct tokenizer *t, int32_t id);
/* The bytes the token decodes to (flags: TOKENIZER_RENDER_SPECIAL). May be
 * part of a UTF-8 character; use a stream for text. */
struct gguf_str tokenizer_token_piece(const struct tokenizer *t, int32_t id, unsigned flags);
/* The id whose vocabulary string is exactly text, or TOKENIZER_NONE. */
int32_t tokenizer_token_find(const struct tokenizer *t, const char *text, size_t len);

/* Encode len bytes of text. *ids is malloc'ed (non-NULL even when *n_ids is
 * 0); the caller frees it. Fails only on allocation or regex-engine limits. */
bool tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, unsigned flags,
                      int32_t **ids, size_t *n_ids, struct err *e);

/* A byte range of the input. */
struct tokenizer_span {
    size_t start, len;
};

/* tokenizer_encode(), but inside the `literal` ranges (sorted, disjoint,
 * within the text) control and unknown token texts stay text even with
 * TOKENIZER_PARSE_SPECIAL: a chat prompt's template parts are parsed for
 * special tokens, the messages in it are not. Text on both sides of a range
 * boundary is tokenized as one run, so an input without control-token text
 * in its literal ranges encodes exactly as tokenizer_encode() would. */
bool tokenizer_encode_literal(const struct tokenizer *t, const char *text, size_t len,
                              unsigned flags, const struct tokenizer_span *literal,
                              size_t n_literal, int32_t **ids, size_t *n_ids, struct err *e);

/* Streaming detokenization for one sequence: push ids one at a time, get
 * text that is always complete, valid UTF-8. A character split across
 * tokens is held until complete; bytes that can never form a character come
 * out as U+FFFD. Plain value, no allocation; init before use. */
struct tokenizer_stream {
    unsigned flags;
    bool stripped;   /* TOKENIZER_STRIP_LEADING_SPACE already applied */
    uint8_t n_held;  /* bytes of an incomplete character, waiting */
    uint8_t held[3];
};

void tokenizer_stream_init(struct tokenizer_stream *s, unsigned flags);
/* Capacity `out` needs for any single push or flush with this tokenizer. */
size_t tokenizer_stream_out_max(const struct tokenizer *t);
/* Append the text that token id completes to out; returns its length (0 is
 * common: a control token, or half a character). */
size_t tokenizer_stream_push(const struct tokenizer *t, struct tokenizer_stream *s, int32_t id,
                             char *out);
/* End of sequence: a held incomplete character comes out as U+FFFD. */
size_t tokenizer_stream_flush(struct tokenizer_stream *s, char *out);

/* Whole-sequence decode through a stream (flushed): *text is malloc'ed and
 * NUL-terminated; *len excludes the NUL. */
bool tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n_ids,
                      unsigned flags, char **text, size_t *len, struct err *e);

#endif
