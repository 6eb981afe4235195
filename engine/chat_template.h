/*
 * chat_template.h — chat messages to a prompt, the way the model was trained.
 *
 * Contract
 *   A model's GGUF carries its chat template as Jinja source
 *   (`tokenizer.chat_template`). We do not run Jinja: chat_template_new()
 *   recognises the common families by markers in the source and
 *   chat_template_render() writes what the real templates produce (with
 *   add_generation_prompt = true), by hand:
 *
 *     family   marker                        rendering (\n is a line feed)
 *     chatml   <|im_start|>                  <|im_start|>ROLE\nTEXT<|im_end|>\n ...
 *                                            <|im_start|>assistant\n
 *              When the template hard-codes a default system prompt for
 *              conversations without one (Qwen2 and Qwen2.5 do), it is
 *              taken from the template and rendered first.
 *     llama3   <|start_header_id|>           BOS<|start_header_id|>ROLE<|end_header_id|>\n\n
 *                                            trim(TEXT)<|eot_id|> ... then the assistant
 *                                            header and \n\n
 *     gemma    <start_of_turn>               BOS<start_of_turn>user\nSYS\n\ntrim(TEXT)
 *                                            <end_of_turn>\n ... <start_of_turn>model\n
 *                                            (assistant is "model"; the system text is
 *                                            folded into the first user turn, as Gemma 3
 *                                            does)
 *     phi3     <|user|> and <|end|>          <|ROLE|>\nTEXT<|end|>\n ... <|assistant|>\n
 *     zephyr   <|user|> without <|end|>      <|ROLE|>\nTEXT EOS\n ... <|assistant|>\n
 *     llama2   [INST] and <<SYS>>            BOS[INST] <<SYS>>\nSYS\n<</SYS>>\n\nstrip(TEXT)
 *                                            [/INST] strip(ANSWER) EOS BOS[INST] ...
 *     mistral  [INST] without <<SYS>>        BOS[INST] TEXT [/INST]ANSWER EOS[INST] ...
 *                                            (v0.1/v0.2 spacing; the system text is
 *                                            folded into the first user turn as
 *                                            SYS\n\nTEXT)
 *     plain    anything else, or no template "System: TEXT\nUser: TEXT\nAssistant: TEXT\n"
 *                                            ... then "Assistant:"
 *
 *   strip/trim remove leading and trailing ASCII whitespace, where the real
 *   templates do (Python's str.strip also knows Unicode spaces; we do not).
 *   chatml, phi3 and zephyr templates that begin with {{ bos_token }} get
 *   BOS first, as they would.
 *
 *   Roles. chatml, llama3, phi3, zephyr and plain render any sequence of
 *   roles. llama2, mistral and gemma need an optional system message first,
 *   then user and assistant strictly alternating, starting with user, as
 *   their templates enforce: anything else fails with ERR_INVALID, param
 *   "messages", naming the offending message. Where those three fold the
 *   system text into the first user turn and no user message follows, an
 *   empty user turn carries it (the real templates would drop it).
 *   An empty conversation is ERR_INVALID. Empty contents are fine.
 *
 *   BOS. `bos` and `eos` are the token texts of the model (NULL when it has
 *   none). *has_bos tells the caller the text already starts with BOS, so
 *   the tokenizer must not add another (special tokens in the template's
 *   parts of the rendered text are meant to be parsed as special tokens;
 *   the messages' parts, given as spans, are not).
 *
 *   Llama 3.1's knowledge-cutoff/date header and Mistral v0.3+/v7 spacing
 *   are not reproduced: those templates render as llama3 and mistral.
 *
 * Ownership
 *   chat_template_new() copies what it keeps (family, default system
 *   prompt, BOS/EOS text); the template source can be freed afterwards.
 *   chat_template_render() returns a malloc'ed, NUL-terminated string the
 *   caller frees. Messages are borrowed for the call.
 *
 * Threads
 *   A chat_template is immutable after creation; render from any thread.
 */
#ifndef MAASD_CHAT_TEMPLATE_H
#define MAASD_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/err.h"

enum chat_role {
    CHAT_ROLE_SYSTEM,
    CHAT_ROLE_USER,
    CHAT_ROLE_ASSISTANT,
};

enum chat_family {
    CHAT_FAMILY_PLAIN,
    CHAT_FAMILY_CHATML,
    CHAT_FAMILY_LLAMA2,
    CHAT_FAMILY_LLAMA3,
    CHAT_FAMILY_MISTRAL,
    CHAT_FAMILY_ZEPHYR,
    CHAT_FAMILY_GEMMA,
    CHAT_FAMILY_PHI3,
};

struct chat_message {
    enum chat_role role;
    const char *content; /* not NUL-terminated; may be NULL when len is 0 */
    size_t len;
};

struct chat_template;

/* `source` may be NULL (no template: plain). `bos`/`eos` may be NULL. */
struct chat_template *chat_template_new(const char *source, size_t source_len, const char *bos,
                                        const char *eos, struct err *e);
void chat_template_free(struct chat_template *t);

enum chat_family chat_template_family(const struct chat_template *t);

/* "chatml", "llama2", "llama3", "mistral", "zephyr", "gemma", "phi3", "plain". */
const char *chat_family_name(enum chat_family f);

/* Where messages' text sits in a rendered prompt (bytes). */
struct chat_span {
    size_t start, len;
};

/* The prompt for `msgs` followed by the assistant's generation prompt;
 * *len (may be NULL) gets its length. When spans is not NULL, *spans
 * (malloc'ed, the caller frees; NULL when there are none) and *n_spans get
 * where the messages' text went, in order and disjoint: text a user wrote
 * that spells a control token is theirs, not the template's, and the
 * tokenizer must keep it text (tokenizer_encode_literal). NULL with
 * ERR_INVALID (param "messages") or ERR_NOMEM. */
char *chat_template_render(const struct chat_template *t, const struct chat_message *msgs,
                           size_t n_msgs, size_t *len, bool *has_bos, struct chat_span **spans,
                           size_t *n_spans, struct err *e);

#endif
