/*
 * The subcommands. Each parses its own options from argv (argv[0] is the
 * command's name) and returns the process exit status.
 */
#ifndef WK_CLI_H
#define WK_CLI_H

typedef struct wk_command {
    const char *name;
    const char *summary; /* one line for `cascade help` */
    int (*main)(int argc, char **argv);
} wk_command;

int wk_cmd_run(int argc, char **argv); /* worker/run_cli.c */
int wk_cmd_validate(int argc, char **argv); /* worker/validate_cli.c */

int wk_cmd_replay(int argc, char **argv); /* worker/replay_cli.c */
int wk_cmd_report(int argc, char **argv); /* worker/report_cli.c */
int wk_cmd_tune(int argc, char **argv);   /* worker/tune_cli.c */
int wk_cmd_enqueue(int argc, char **argv); /* worker/enqueue_cli.c */
int wk_cmd_results(int argc, char **argv); /* worker/results_cli.c */
#endif
