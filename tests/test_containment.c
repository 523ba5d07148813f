/*
 * The containment suite: what a hostile or broken answer might do, each case
 * with the verdict it must get and the proof that nothing of it survives (no
 * process with the run's marker, none under the test's sandbox uids, no
 * unreaped child). Every run is bounded by the fixture's guard timer.
 *
 *   fork bomb                     failed  (fork refused at the process limit)
 *   infinite loop                 timeout (wall clock)
 *   10 GB allocation              memory
 *   one huge file                 output_limit (file-size limit, or the disk)
 *   many small files              output_limit (the size-capped /box fills)
 *   connect to 127.0.0.1          failed  (the sandbox has its own loopback)
 *   write outside the workdir     failed  (read-only system)
 *   read the environment for keys failed  (nothing inherited)
 *   daemonised grandchild         pass    (and it is killed at once)
 */
#include "sandbox_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* The answer does its damage on import; the test only imports it. */
#define IMPORT_TASK PY_TASK("{}", "import solution\\nprint('survived')\\n")

static void fork_bomb_is_stopped_by_process_limit_and_spares_a_neighbour(void **state)
{
    (void)state;
    fixture *fx = fixture_new(NULL, 2);
    outcome bomb, neighbour;
    /* Every process forks for ever; the limit of 64 stops them all. */
    start_task(fx, &bomb, "python", IMPORT_TASK, "import os\nwhile True:\n    os.fork()\n");
    /* A second sandbox at the same time, under its own uid, is not starved of processes. */
    start_task(fx, &neighbour, "python",
               PY_TASK("{}", "import os, time\\nfor i in range(20):\\n"
                             "    pid = os.fork()\\n    if pid == 0:\\n        time.sleep(0.3)\\n"
                             "        os._exit(0)\\nfor i in range(20):\\n    os.wait()\\n"),
               "x = 1\n");
    run_loop(fx);
    /* On a quiet machine the bomb's processes die of EAGAIN and the test fails with the limit
     * in its evidence; on a loaded one (or beside another run of this test, whose sandbox uids
     * share the limit) they may keep forking until the wall clock. Either way the answer fails
     * and the neighbour, below, is not starved. */
    assert_false(bomb.v.pass);
    if (strcmp(bomb.v.reason, "timeout") != 0) {
        assert_verdict(&bomb, "failed");
        assert_contains(bomb.v.evidence, "Resource temporarily unavailable");
    }
    assert_verdict(&neighbour, NULL);
    assert_int_equal(fx->max_running, 2);
    assert_nothing_left(&bomb);
    assert_nothing_left(&neighbour);
    outcome_release(&bomb);
    outcome_release(&neighbour);
    fixture_free(fx);
}

static void infinite_loop_is_killed_at_wall_clock_timeout(void **state)
{
    (void)state;
    val_limits l;
    val_limits_default(&l);
    l.timeout_ms = 1500;
    l.cpu_s = 30; /* the wall clock must be what stops it */
    outcome o;
    /* A sleeping loop uses no CPU, so only the wall clock can end it. */
    run_task(&l, "python", IMPORT_TASK, "import time\nwhile True:\n    time.sleep(0.05)\n", &o);
    assert_verdict(&o, "timeout");
    assert_contains(o.v.message, "wall clock");
    assert_true(o.took_ms >= 1400 && o.took_ms < 5000);
    outcome_release(&o);
}

static void ten_gigabyte_allocation_is_reported_memory(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python", IMPORT_TASK, "b = bytearray(10 * 1024 ** 3)\n", &o);
    assert_verdict(&o, "memory");
    assert_contains(o.v.evidence, "MemoryError");
    outcome_release(&o);
}

static void one_huge_file_hits_the_file_size_limit(void **state)
{
    (void)state;
    val_limits l;
    val_limits_default(&l);
    l.fsize_bytes = 8ul << 20; /* below the disk, so the file-size limit is what stops it */
    outcome o;
    /* A program that does not catch SIGXFSZ is killed by it. */
    run_task(&l, "bash",
             "{\"tests\": {\"command\": [\"sh\", \"-c\", \"sh solution.sh && echo survived\"]}}",
             "head -c 1000000000 /dev/zero > big.bin\n", &o);
    assert_verdict(&o, "output_limit");
    outcome_release(&o);
    /* Python ignores SIGXFSZ and gets EFBIG instead: the same verdict. */
    run_task(
        &l, "python", IMPORT_TASK,
        "with open('big.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * (1 << 20))\n",
        &o);
    assert_verdict(&o, "output_limit");
    assert_contains(o.v.message, "file-size limit");
    outcome_release(&o);
}

static void many_small_files_fill_the_capped_workdir(void **state)
{
    (void)state;
    val_limits l;
    val_limits_default(&l);
    l.tmpfs_bytes = 4ul << 20; /* 1000 files of 4 KiB pages fill it quickly */
    outcome o;
    run_task(&l, "python", IMPORT_TASK,
             "import os\nos.mkdir('many')\nfor i in range(100000):\n"
             "    with open('many/%d' % i, 'w') as f:\n        f.write('x' * 100)\n",
             &o);
    assert_verdict(&o, "output_limit");
    assert_contains(o.v.evidence, "No space left on device");
    outcome_release(&o);
}

static void connect_to_host_loopback_listener_fails(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 4), 0);
    socklen_t alen = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &alen);
    char answer[512];
    snprintf(answer, sizeof answer,
             "import socket\ns = socket.create_connection(('127.0.0.1', %d), timeout=3)\n"
             "s.sendall(b'stolen')\n",
             ntohs(a.sin_port));
    outcome o;
    run_task(NULL, "python", IMPORT_TASK, answer, &o);
    assert_verdict(&o, "failed");
    assert_contains(o.v.evidence, "ConnectionRefusedError");
    assert_null(strstr(o.v.evidence, "survived"));
    /* The listener never saw a connection. */
    int c = accept(ls, NULL, NULL);
    assert_int_equal(c, -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    close(ls);
    outcome_release(&o);
}

static void writes_outside_the_workdir_fail(void **state)
{
    (void)state;
    outcome o;
    /* Each write outside /box must fail; the answer reports how many got through. */
    run_task(NULL, "python", IMPORT_TASK,
             "import os\nwrote = []\n"
             "for p in ['/usr/cascade-evil', '/etc/cascade-evil', '/cascade-evil',\n"
             "          '/run/cascade/evil', '/proc/sys/kernel/hostname', '/dev/cascade-evil',\n"
             "          '/usr/lib/cascade-evil']:\n"
             "    try:\n        open(p, 'w').write('x')\n        wrote.append(p)\n"
             "    except OSError:\n        pass\n"
             "open('inside.txt', 'w').write('ok')\nopen('/tmp/scratch.txt', 'w').write('ok')\n"
             "if wrote:\n    raise SystemExit('WROTE ' + ' '.join(wrote))\n"
             "open('/etc/cascade-evil', 'w')\n",
             &o);
    assert_verdict(&o, "failed");
    assert_contains(o.v.evidence, "Read-only file system");
    assert_null(strstr(o.v.evidence, "WROTE"));
    struct stat st;
    assert_int_not_equal(stat("/usr/cascade-evil", &st), 0);
    assert_int_not_equal(stat("/etc/cascade-evil", &st), 0);
    assert_int_not_equal(stat("/usr/lib/cascade-evil", &st), 0);
    outcome_release(&o);
}

static void environment_of_worker_is_not_visible(void **state)
{
    (void)state;
    setenv("CASCADE_FAKE_API_KEY", "fake-cascade-secret-value", 1);
    outcome o;
    /* The answer prints its whole environment and fails so the output becomes evidence. */
    run_task(NULL, "python", IMPORT_TASK,
             "import os, sys\nfor k, v in sorted(os.environ.items()):\n    print(k + '=' + v)\n"
             "print(open('/proc/1/environ').read())\nsys.exit(3)\n",
             &o);
    unsetenv("CASCADE_FAKE_API_KEY");
    assert_verdict(&o, "failed");
    assert_contains(o.v.message, "exit status 3");
    assert_contains(o.v.evidence, "PATH=/usr/local/bin:/usr/bin:/bin");
    assert_contains(o.v.evidence, "HOME=/run/cascade/home");
    assert_null(strstr(o.v.evidence, "fake-cascade-secret-value"));
    assert_null(strstr(o.v.evidence, "CASCADE_FAKE_API_KEY"));
    outcome_release(&o);
}

static void host_private_files_are_not_visible(void **state)
{
    (void)state;
    outcome o;
    /* /root, /home and the repository are not bound; /etc/shadow is not readable. */
    run_task(NULL, "python",
             PY_TASK("{}", "import os\\nassert not os.path.exists('/root')\\n"
                           "assert not os.path.exists('/work')\\n"
                           "assert not os.path.exists('/home')\\n"
                           "try:\\n    open('/etc/shadow').read()\\n    raise SystemExit('read')\\n"
                           "except PermissionError:\\n    pass\\n"
                           "assert os.getuid() == 65534\\n"),
             "x = 1\n", &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
}

static void daemonised_grandchild_is_killed_when_the_test_ends(void **state)
{
    (void)state;
    outcome o;
    /*
     * Double fork and setsid: the grandchild leaves the test's session and
     * keeps the output pipe open, sleeping for a minute. The test itself
     * passes at once; the verdict must not wait for the daemon, and the
     * daemon must not outlive the run.
     */
    run_task(NULL, "python", IMPORT_TASK,
             "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
             "        time.sleep(60)\n        print('daemon still here')\n    os._exit(0)\n"
             "os.wait()\n",
             &o);
    assert_verdict(&o, NULL);
    assert_true(o.took_ms < 1500);
    outcome_release(&o);
}

int main(void)
{
    if (fx_require_bwrap("test_containment"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fork_bomb_is_stopped_by_process_limit_and_spares_a_neighbour),
        cmocka_unit_test(infinite_loop_is_killed_at_wall_clock_timeout),
        cmocka_unit_test(ten_gigabyte_allocation_is_reported_memory),
        cmocka_unit_test(one_huge_file_hits_the_file_size_limit),
        cmocka_unit_test(many_small_files_fill_the_capped_workdir),
        cmocka_unit_test(connect_to_host_loopback_listener_fails),
        cmocka_unit_test(writes_outside_the_workdir_fail),
        cmocka_unit_test(environment_of_worker_is_not_visible),
        cmocka_unit_test(host_private_files_are_not_visible),
        cmocka_unit_test(daemonised_grandchild_is_killed_when_the_test_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
