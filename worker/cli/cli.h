/*
 * The subcommands. Each parses its own options from argv (argv[0] is the
 * command's name) and returns the process exit status.
 */
#ifndef WK_CLI_H
#define WK_CLI_H

/*
 * Option values (worker/cli.c): 0 and *out set, or -1 for an empty string,
 * trailing text, overflow or a value outside [lo, hi].
 */
int wk_cli_long(const char *s, long lo, long hi, long *out);
int wk_cli_double(const char *s, double lo, double hi, double *out);
/* Seconds, fractions allowed, into milliseconds. */
int wk_cli_secs(const char *s, double lo, double hi, long *ms);

/*
 * A JSON object from a file of at most 4 MiB (a --base cascade, a manifest):
 * 0 and *out (the caller's, cJSON_Delete), or an error said on stderr as
 * "cascade CMD: ..." with *out NULL.
 */
struct cJSON;
int wk_cli_json_object(const char *cmd, const char *path, struct cJSON **out);

/*
 * Options `cascade run` and `cascade fix` share, with one meaning, default
 * and error each: the getopt codes both option tables use (above any short
 * option and each command's own codes), and the parser (worker/cli/cli.c).
 */
enum {
    WK_OPT_CASCADES = 1000,
    WK_OPT_MODELS,
    WK_OPT_CASCADE,
    WK_OPT_PATCHDIR,
    WK_OPT_BRANCHPFX,
    WK_OPT_FORCEBRANCH,
    WK_OPT_AUTHOR,
    WK_OPT_BUDGET,
    WK_OPT_TTIMEOUT,
};
struct wk_run_opts;
/*
 * Applies shared option c with value arg to o: 1 done, 0 not a shared option,
 * -1 bad value (the caller names it). --author's strings go in *author_name
 * and *author_email, which the caller owns and frees (an earlier pair is
 * freed here); o only borrows them and arg.
 */
int wk_cli_run_opt(int c, const char *arg, struct wk_run_opts *o, char **author_name,
                   char **author_email);

/*
 * The lane options of `cascade run` (lanes.h, README "Lanes"), kept apart
 * from the others: WK_CLI_LANE_OPTIONS goes in the getopt table,
 * WK_CLI_LANE_USAGE in the usage text, and wk_cli_lane_opt applies one
 * (1 done, 0 not a lane option, -1 bad value).
 */
enum {
    WK_OPT_FLEX_TIMEOUT = 1500,
    WK_OPT_FLEX_MAX_WAIT,
    WK_OPT_BATCH_MAX,
    WK_OPT_BATCH_LINGER,
    WK_OPT_BATCH_POLL,
    WK_OPT_DEADLINE,
};
/* clang-format off */
#define WK_CLI_LANE_OPTIONS                                                 \
    {"flex-timeout", required_argument, NULL, WK_OPT_FLEX_TIMEOUT},         \
    {"flex-max-wait", required_argument, NULL, WK_OPT_FLEX_MAX_WAIT},       \
    {"batch-max", required_argument, NULL, WK_OPT_BATCH_MAX},               \
    {"batch-linger", required_argument, NULL, WK_OPT_BATCH_LINGER},         \
    {"batch-poll", required_argument, NULL, WK_OPT_BATCH_POLL},             \
    {"deadline", required_argument, NULL, WK_OPT_DEADLINE}
/* clang-format on */
#define WK_CLI_LANE_USAGE                                                                          \
    "  --flex-timeout SEC   flex tiers: until the response starts [900]\n"                         \
    "  --flex-max-wait SEC  flex tiers: how long a call retries flex after the tier\n"             \
    "                       says it has no capacity, then goes to sync [300]\n"                    \
    "  --batch-max N        batch tiers: requests in one batch [50000]\n"                          \
    "  --batch-linger SEC   batch tiers: a batch is sent this long after its first\n"              \
    "                       request at the latest [60]\n"                                          \
    "  --batch-poll SEC     batch tiers: first wait between status checks, doubling\n"             \
    "                       to 10 min [30]\n"                                                      \
    "  --deadline DURATION  the run's time (90s, 30m, 2h): with a quarter of it left,\n"           \
    "                       batches still out are cancelled and their unanswered\n"                \
    "                       requests, like later batch-tier calls, go sync [none]\n"
int wk_cli_lane_opt(int c, const char *arg, struct wk_run_opts *o);

/*
 * The semantic start tier's options of `run` and `replay` (README "Similar
 * tasks start where they succeeded"), as the lane options are shared.
 */
enum {
    WK_OPT_HISTORY_MAX = 1600,
    WK_OPT_HISTORY_FROM,
};
/* clang-format off */
#define WK_CLI_HISTORY_OPTIONS                                              \
    {"history-max", required_argument, NULL, WK_OPT_HISTORY_MAX},           \
    {"history-from", required_argument, NULL, WK_OPT_HISTORY_FROM}
/* clang-format on */
#define WK_CLI_HISTORY_USAGE                                                                       \
    "  --history-max N      similar start: past tasks' embeddings held in memory,\n"               \
    "                       the oldest dropped first [100000]\n"                                   \
    "  --history-from FILE  similar start: read the history of another run's\n"                    \
    "                       journal too (read only) [none]\n"
int wk_cli_history_opt(int c, const char *arg, struct wk_run_opts *o);

/* Exit codes of every subcommand (`cascade run` uses them all). */
enum {
    WK_EXIT_OK = 0,          /* every task has its result line */
    WK_EXIT_FAIL = 1,        /* startup or output error: see stderr */
    WK_EXIT_USAGE = 2,       /* bad command line */
    WK_EXIT_INTERRUPTED = 3, /* stopped (signal or run budget) before the input was done */
    WK_EXIT_DRIFT = 4,       /* `drift`: a pass rate moved beyond chance, or a canary dropped */
};

typedef struct wk_command {
    const char *name;
    const char *summary; /* one line for `cascade help` */
    int (*main)(int argc, char **argv);
} wk_command;

int wk_cmd_run(int argc, char **argv);      /* worker/run_cli.c */
int wk_cmd_validate(int argc, char **argv); /* worker/validate_cli.c */

int wk_cmd_replay(int argc, char **argv);  /* worker/replay_cli.c */
int wk_cmd_report(int argc, char **argv);  /* worker/report_cli.c */
int wk_cmd_tune(int argc, char **argv);    /* worker/tune_cli.c */
int wk_cmd_enqueue(int argc, char **argv); /* worker/enqueue_cli.c */
int wk_cmd_results(int argc, char **argv); /* worker/results_cli.c */
int wk_cmd_fix(int argc, char **argv);     /* worker/cli/fix_cli.c */
int wk_cmd_check(int argc, char **argv);   /* worker/cli/check_cli.c */
int wk_cmd_drift(int argc, char **argv);   /* worker/cli/drift_cli.c */
int wk_cmd_bakeoff(int argc, char **argv); /* worker/cli/bakeoff_cli.c */
#endif
