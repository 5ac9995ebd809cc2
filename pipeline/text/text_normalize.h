/* The BERT "basic tokenizer": turns raw UTF-8 text into normalised words, exactly as
 * transformers' slow BertTokenizer does before WordPiece (do_lower_case=True,
 * tokenize_chinese_chars=True, strip_accents=None). Shared by the WordPiece tokenizer and the
 * n-gram featuriser so both see the same words. docs/text.md lists the steps.
 *
 * Invalid UTF-8 is decoded like Python's bytes.decode("utf-8", errors="replace"): each maximal
 * ill-formed subsequence (overlongs, surrogates, code points above U+10FFFF, truncated sequences,
 * lone continuation bytes, 0xC0/0xC1/0xF5..0xFF) becomes U+FFFD, which the cleanup step then
 * drops. So invalid bytes vanish without splitting the word around them, and never crash. */
#ifndef VIGIL_TEXT_NORMALIZE_H
#define VIGIL_TEXT_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

/* Growable work buffer owned by the caller. One per thread: reusing it across calls means the
 * steady state allocates nothing (it only grows to the longest whitespace-free run seen). */
typedef struct text_normalize_scratch text_normalize_scratch_t;

/* Called once per word in text order. For a normal word, cps holds its n code points (valid
 * only during the call) and special is -1. For a special token matched in the text, cps is NULL,
 * n is 0 and special is its index in the specials array given to text_normalize_words.
 * Return 0 to go on, -1 to stop (text_normalize_words then returns -1 with the callback's
 * message, which it must write into err). */
typedef int (*text_normalize_word_fn)(void *ctx, const uint32_t *cps, size_t n, int special,
                                      char *err, size_t errlen);

text_normalize_scratch_t *text_normalize_scratch_new(void);
void text_normalize_scratch_free(text_normalize_scratch_t *s);

/* Splits text (len bytes, need not be NUL-terminated) into words and calls fn for each.
 * specials (may be NULL when n_specials is 0) are ASCII strings such as "[CLS]" that are cut out
 * of the raw text first, case-sensitively, leftmost first, as the slow tokenizer's added-token
 * trie does; everything else is normalised. Returns 0, or -1 with err filled (out of memory, or
 * the callback stopped). */
int text_normalize_words(const char *text, size_t len, const char *const *specials,
                         size_t n_specials, text_normalize_scratch_t *s, text_normalize_word_fn fn,
                         void *ctx, char *err, size_t errlen);

/* 1 when cp is a "Chinese character" in BasicTokenizer's sense (the CJK ideograph blocks): such
 * a code point always forms a one-character word. */
int text_normalize_is_cjk(uint32_t cp);

/* Decodes one code point from text[*pos..len) with the replacement rules above, advancing *pos
 * by at least one byte. Exposed so callers (n-gram features) can walk raw text the same way. */
uint32_t text_normalize_decode_utf8(const unsigned char *text, size_t len, size_t *pos);

/* Writes cp as UTF-8 into out (room for 4 bytes) and returns the byte count (1..4). */
size_t text_normalize_encode_utf8(uint32_t cp, unsigned char *out);

#endif
