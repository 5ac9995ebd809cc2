/* `vigil train risk`: trains the risk MLP from labelled event files (train_risk.c). */
#ifndef VIGIL_TRAIN_RISK_H
#define VIGIL_TRAIN_RISK_H

/* argv[0] is "risk". Returns the exit status: 0 written, 1 failure, 2 usage. */
int train_risk_main(int argc, char **argv);

#endif
