/* BERT WordPiece tokenizer: the exact ids transformers' slow BertTokenizer (do_lower_case=True)
 * gives for a text, for the sentence encoder's input. Normalisation is text_normalize.h's; this
 * file adds the vocabulary, greedy longest-match-first WordPiece and the [CLS]/[SEP]/[PAD] framing.
 *
 * Thread safety: a wordpiece_t is read-only after wordpiece_new, so any number of threads may
 * encode with it at once, each with its own wordpiece_scratch_t. Steady-state encoding allocates
 * nothing (the scratch only grows to the longest whitespace-free run seen).
 *
 * Invalid UTF-8: decoded like Python's bytes.decode("utf-8", errors="replace"); the U+FFFD
 * characters that gives are then removed by BERT's cleanup, so bad bytes simply vanish (they do
 * not split a word). Any input length works; memory grows with the longest run without
 * whitespace, not with the text. */
#ifndef VIGIL_WORDPIECE_H
#define VIGIL_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wordpiece wordpiece_t;
typedef struct wordpiece_scratch wordpiece_scratch_t;

/* Words longer than this many code points become one [UNK], as in transformers. */
#define WORDPIECE_MAX_WORD_CHARS 100

/* Loads vocab.txt (one token per line, id = 0-based line number; a later duplicate wins, as in
 * transformers' load_vocab). Fails, filling err, when the file cannot be read or lacks any of
 * [CLS], [SEP], [UNK], [PAD]. "[MASK]" is treated as a special token only if present. */
wordpiece_t *wordpiece_new(const char *vocab_path, char *err, size_t errlen);
void wordpiece_free(wordpiece_t *wp);

wordpiece_scratch_t *wordpiece_scratch_new(void);
void wordpiece_scratch_free(wordpiece_scratch_t *s);

/* Number of tokens in the vocabulary, and the id of a token (-1 when absent). */
size_t wordpiece_vocab_size(const wordpiece_t *wp);
int32_t wordpiece_token_id(const wordpiece_t *wp, const char *token);

/* The ids of text without [CLS]/[SEP], as tokenizer.encode(text, add_special_tokens=False):
 * stores the first max_ids into ids (ids may be NULL when max_ids is 0) and sets *n_full to the
 * total count. Special-token strings written in the text ("[CLS]", "[SEP]", "[UNK]", "[PAD]",
 * "[MASK]", case-sensitive) give their own ids, as in the slow tokenizer. Returns 0 or -1. */
int wordpiece_tokenize(const wordpiece_t *wp, wordpiece_scratch_t *s, const char *text, size_t len,
                       int32_t *ids, size_t max_ids, size_t *n_full, char *err, size_t errlen);

/* Model input, as tokenizer(text, truncation=True, max_length=max_len, padding="max_length"):
 * ids[0] = [CLS], then the first max_len-2 tokens, then [SEP]; mask is 1 there. The remaining
 * slots up to max_len hold [PAD] with mask 0. ids and mask have room for max_len entries;
 * max_len must be at least 2. *n_out = count of mask-1 slots; *n_full = token count before
 * truncation, without specials (n_full > max_len - 2 means the text was truncated). */
int wordpiece_encode(const wordpiece_t *wp, wordpiece_scratch_t *s, const char *text, size_t len,
                     size_t max_len, int32_t *ids, uint8_t *mask, size_t *n_out, size_t *n_full,
                     char *err, size_t errlen);

#endif
