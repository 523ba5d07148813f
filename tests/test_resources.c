/*
 * The sandbox as a whole is capped, not only each process: memory held in
 * many memfds (each under the file-size limit, none mapped, so RLIMIT_AS
 * never sees it), many processes, and many empty files, all stopped by the
 * run's memory and pids cgroup. Where no cgroup can be made, the worker has
 * said so once (val_env_new) and these cases are reported as skipped.
 */
#include "sandbox_fixture.h"

#define IMPORT_TASK PY_TASK("{}", "import solution\\nprint('survived')\\n")

/* Small limits, so the cases end quickly: 128 MiB + 3 x 16 MiB of tmpfs for the group. */
static void small_limits(val_limits *l)
{
    val_limits_default(l);
    l->mem_bytes = 128ul << 20;
    l->tmpfs_bytes = 16ul << 20;
    l->fsize_bytes = 32ul << 20;
    l->timeout_ms = 20000;
    l->cpu_s = 15;
}

/* 1 when this machine gives sandboxes cgroups; else says why the test is a no-op. */
static int have_cgroups(const char *test)
{
    val_limits l;
    small_limits(&l);
    fixture *fx = fixture_new(&l, 1);
    int mode = fx->env->cg_mode;
    fixture_free(fx);
    if (!mode)
        print_message("%s: no cgroup can be made here (the warning above said so); skipped\n",
                      test);
    return mode;
}

static void memory_in_many_memfds_is_stopped(void **state)
{
    (void)state;
    if (!have_cgroups("memfd"))
        return;
    val_limits l;
    small_limits(&l);
    outcome o;
    /* 40 memfds of 16 MiB: 640 MiB, each under the file-size limit and none counted by RLIMIT_AS.
     */
    run_task(&l, "python", IMPORT_TASK,
             "import os\nchunk = b'x' * (1 << 20)\nfds = []\nfor k in range(40):\n"
             "    fd = os.memfd_create('m')\n    for i in range(16):\n        os.write(fd, chunk)\n"
             "    fds.append(fd)\nprint('held', len(fds) * 16, 'MiB')\n",
             &o);
    if (o.v.pass || strcmp(o.v.reason, "memory") != 0) {
        show_failure(&o);
        fail_msg("wanted memory, got %s", o.v.pass ? "a pass" : o.v.reason);
    }
    assert_contains(o.v.message, "MiB of memory");
    outcome_release(&o);
}

static void many_processes_are_stopped(void **state)
{
    (void)state;
    if (!have_cgroups("processes"))
        return;
    val_limits l;
    small_limits(&l);
    l.nproc = 16;
    outcome o;
    run_task(&l, "python", IMPORT_TASK,
             "import os, time\nn = 0\nfor k in range(200):\n    try:\n"
             "        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n"
             "        n += 1\n    except OSError:\n        break\n"
             "print('children', n)\nassert n < 100, n\nraise SystemExit(1)\n",
             &o);
    assert_verdict(&o, "failed");
    outcome_release(&o);
}

static void many_empty_files_are_stopped(void **state)
{
    (void)state;
    if (!have_cgroups("inodes"))
        return;
    val_limits l;
    small_limits(&l);
    l.mem_bytes = 48ul << 20;
    outcome o;
    /* Empty files cost no tmpfs bytes, only inodes: kernel memory charged to the group. */
    run_task(&l, "python", IMPORT_TASK,
             "import os\nos.mkdir('d')\nfor k in range(3000000):\n"
             "    open('d/%d' % k, 'w').close()\nprint('made them all')\n",
             &o);
    if (o.v.pass || strcmp(o.v.reason, "memory") != 0) {
        show_failure(&o);
        fail_msg("wanted memory, got %s", o.v.pass ? "a pass" : o.v.reason);
    }
    outcome_release(&o);
}

int main(void)
{
    if (fx_require_bwrap("test_resources"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_in_many_memfds_is_stopped),
        cmocka_unit_test(many_processes_are_stopped),
        cmocka_unit_test(many_empty_files_are_stopped),
    };
    return cmocka_run_group_tests_name("resources", tests, NULL, NULL);
}
