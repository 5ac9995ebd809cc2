/* `vigil alerts`: list, show, acknowledge and resolve alerts (docs/alerts.md). */
#ifndef VIGIL_ALERTS_CMD_H
#define VIGIL_ALERTS_CMD_H

/* argv[0] is "alerts". Returns the process exit status: 0 done, 1 failure (no such alert, or
 * the database), 2 usage. */
int alerts_main(int argc, char **argv);

#endif
