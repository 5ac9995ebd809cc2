/* `vigil produce`: synthetic records (daemon/data/produce.h) into Kafka, or labelled events into
 * a file. */
#ifndef VIGIL_PRODUCE_CMD_H
#define VIGIL_PRODUCE_CMD_H

/* `vigil produce [options]` (argv[0] is the subcommand name): returns the process exit status
 * (0 ok, 1 runtime failure, 2 usage). Prints exactly one summary line on stdout:
 *     produced=<total> good=<n> malformed=<n> delivered=<n> failed=<n>
 * and with --output FILE, " fraud=<n>" (the fraudulent events written) at its end. */
int produce_main(int argc, char **argv);

#endif
