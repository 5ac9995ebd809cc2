/* `vigil train news`: trains the news model's sentiment and topic heads on the encoder's
 * embeddings of labelled CSV files (train_news.c). */
#ifndef VIGIL_TRAIN_NEWS_H
#define VIGIL_TRAIN_NEWS_H

/* argv[0] is "news". Returns the exit status: 0 written, 1 failure, 2 usage. */
int train_news_main(int argc, char **argv);

#endif
