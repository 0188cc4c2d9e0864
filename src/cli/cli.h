/*
 * cli.h - the `sluice` subcommands, one file each; main.c dispatches.
 * Each takes argv with argv[0] = its own name and returns the exit status.
 */
#ifndef SL_CLI_CLI_H
#define SL_CLI_CLI_H

/* sluice bench produce|consume: the librdkafka load generator (bench.c). */
int sl_cli_bench(int argc, char **argv);

/* sluice groups list|describe|delete|reset-offsets: consumer-group admin on librdkafka (groups.c). */
int sl_cli_groups(int argc, char **argv);

#endif
