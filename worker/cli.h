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

#endif
