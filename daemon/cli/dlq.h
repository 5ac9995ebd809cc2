/* `vigil dlq`: look at dead letters and replay them once their cause is fixed. */
#ifndef VIGIL_DLQ_H
#define VIGIL_DLQ_H

/* argv[0] is "dlq". Returns the process exit status: 0 done, 1 failure, 2 usage. */
int dlq_main(int argc, char **argv);

#endif
