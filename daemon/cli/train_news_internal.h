/* Internals of `vigil train news`, shared by train_news.c (the command: the CSV files, the
 * encoder, the heads, the model file) and train_news_choose.c (the option search) only. */
#ifndef VIGIL_TRAIN_NEWS_INTERNAL_H
#define VIGIL_TRAIN_NEWS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "train.h"

#define NEWS_VALID_MOD 10 /* one training row in this many validates the choice */

/* One file's rows: label and text point into buf, unquoted in place and NUL-terminated. */
typedef struct news_csv {
    char name[64]; /* as the messages and the training record name it: "fpb/train.csv" */
    char *buf;
    size_t n, cap;
    char **label, **text;
    size_t *text_len, *line;
    int32_t *y; /* the class of each row */
    char sha256[65];
} news_csv_t;

/* Chooses o's lr, epochs (unless fixed_epochs) and class balancing for a c-class head on the rows
 * of csv, embedded in x (csv->n x d), by macro-F1 on its validation split: one row in
 * NEWS_VALID_MOD, by a hash of its text mixed with o->seed. Each candidate trains on a backend
 * named `backend` of its own, up to `threads` at a time. *best_f1 receives the winner's. Returns
 * 0, or -1 with err. */
int train_news_choose(const char *head, const news_csv_t *csv, const float *x, size_t d, size_t c,
                      int try_balanced, int fixed_epochs, int threads, const char *backend,
                      train_options_t *o, double *best_f1, char *err, size_t errlen);

#endif
