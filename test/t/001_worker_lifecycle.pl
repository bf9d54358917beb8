# The worker appears in pg_stat_activity, comes back after it dies, and
# neither a worker error nor a kill -9 needs the DBA to restart PostgreSQL.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;

my $node = asr_node('lifecycle');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');

ok(wait_for_query($node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'asr worker'", '1'),
	'one asr worker runs');
ok(wait_for_query($node, "SELECT phase FROM asr_worker_status", 'idle'),
	'worker reports idle in asr_worker_status');
is($node->safe_psql('postgres',
		"SELECT wait_event_type || '/' || wait_event || ' ' || query FROM pg_stat_activity WHERE backend_type = 'asr worker'"),
	'Extension/Extension asr: idle',
	'worker sleeps on its latch and says what it does in pg_stat_activity');
is($node->safe_psql('postgres', 'SELECT pid FROM asr_worker_status'),
	worker_pid($node), 'asr_worker_status names the running worker');

my $postmaster_start = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

# A worker that ends with an error (exit code 1) is restarted alone: other
# sessions survive.
my $session = $node->background_psql('postgres');
my $session_pid = $session->query_safe('SELECT pg_backend_pid()');
my $pid = worker_pid($node);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(wait_for_query($node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'asr worker' AND pid <> $pid", '1'),
	'a new worker replaces a terminated one');
is($session->query_safe('SELECT pg_backend_pid()'), $session_pid,
	'other sessions are untouched when the worker exits with an error');
$session->quit;

# kill -9: PostgreSQL reinitializes shared memory (as for any backend that
# dies by a signal), but the postmaster stays up and the worker comes back
# with no action by the DBA.
$pid = worker_pid($node);
kill 'KILL', $pid;
ok(wait_for_query($node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'asr worker' AND pid <> $pid", '1', 90),
	'a new worker after kill -9');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$postmaster_start, 'the postmaster itself was not restarted');
ok(wait_for_query($node, "SELECT phase FROM asr_worker_status", 'idle'),
	'the new worker is idle and healthy');

# Reload: SIGHUP reaches the worker, which keeps running with new settings.
$pid = worker_pid($node);
$node->append_conf('postgresql.conf', "asr.poll_interval = 7s\n");
$node->reload;
ok(wait_for_query($node, "SHOW asr.poll_interval", '7s'), 'reload applied');
is(worker_pid($node), $pid, 'the worker survives a reload');

# DROP EXTENSION while the worker runs: no hang; the worker idles and
# picks the extension up again after CREATE EXTENSION.
$node->safe_psql('postgres', 'DROP EXTENSION asr');
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
ok(wait_for_query($node, "SELECT phase FROM asr_worker_status", 'idle'),
	'worker idle again after DROP/CREATE EXTENSION');

# DROP DATABASE of another database never waits for the worker.
$node->safe_psql('postgres', 'CREATE DATABASE scratch');
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE scratch',
	timeout => 30);
is($ret, 0, 'DROP DATABASE of another database completes');

# Fast shutdown while the worker runs.
$node->stop('fast');
like(slurp_file($node->logfile), qr/asr worker started in database "postgres"/,
	'worker logged its start');
done_testing();
