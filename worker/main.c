/*
 * cascade: the command line. Each subcommand lives in its own file, parses
 * its own options and hands a plain options struct to the code that does the
 * work; this file only dispatches.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "run.h"
#include "worker/cli/cli.h"

#define CASCADE_VERSION "0.1.0"

static const wk_command commands[] = {
    {"run", "run a batch of tasks (JSONL) through their cascades", wk_cmd_run},
    {"validate", "run a task's validators on one answer; print the verdict as JSON",
     wk_cmd_validate},
    {"replay", "run cascades offline against recorded answers; --runs K for mean and sd",
     wk_cmd_replay},
    {"report", "per cascade, tier and kind: pass rate, cost, saving; --html for charts",
     wk_cmd_report},
    {"tune", "learn the cheapest plan that reaches a target pass rate from results", wk_cmd_tune},
    {"bakeoff", "call candidate models on tasks K times; table, recordings, blind review",
     wk_cmd_bakeoff},
    {"enqueue", "push task lines onto a Redis stream for `run --queue` workers", wk_cmd_enqueue},
    {"results", "read a Redis stream's results as JSONL, one line per task", wk_cmd_results},
    {"fix", "CI bot: a patch for a repository's failing tests, committed on a branch", wk_cmd_fix},
    {"drift", "pass rate, cost and escalations over time per cascade, tier and model; flags drift",
     wk_cmd_drift},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fputs("usage: cascade <command> [options]\n"
          "\n"
          "Sends coding tasks to language models cheapest first, checks each answer\n"
          "with real validators, and climbs to a pricier model only when it fails.\n"
          "\n"
          "commands:\n",
          f);
    for (const wk_command *c = commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fputs("  help       this text; `cascade COMMAND --help` for a command's options\n"
          "  version    print the version\n",
          f);
}

/*
 * Started with stdin, stdout or stderr closed, the first file or socket we
 * open would take its number: libuv then asserts at exit, and a result or an
 * error message could land in a journal or a socket. /dev/null fills the hole.
 */
static void fill_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        int n = open("/dev/null", O_RDWR);
        if (n >= 0 && n != fd) {
            /* A lower one was closed too and was filled first; this one follows. */
            dup2(n, fd);
            close(n);
        }
    }
}

/*
 * Open files: every sandbox, call and journal holds some, and a low soft
 * limit (1024, or less) makes correct answers fail with "Too many open
 * files". The soft limit goes up to the hard one; the sandbox sizes its
 * concurrency to what that allows (val_env_new), and a shortage is waited on.
 */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int main(int argc, char **argv)
{
    fill_std_fds();
    raise_nofile();
    if (argc < 2) {
        usage(stderr);
        return WK_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    for (const wk_command *c = commands; c->name; c++)
        if (strcmp(cmd, c->name) == 0)
            return c->main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("cascade %s\n", CASCADE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 2)
            for (const wk_command *c = commands; c->name; c++)
                if (strcmp(argv[2], c->name) == 0) {
                    char *av[] = {argv[2], "--help", NULL};
                    return c->main(2, av);
                }
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "cascade: unknown command \"%s\"\n\n", cmd);
    usage(stderr);
    return WK_EXIT_USAGE;
}
