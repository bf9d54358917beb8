# Lifecycle while jobs run: DROP DATABASE of another database, ALTER SYSTEM
# + reload, pg_ctl stop -m fast (with a POST in flight) and DROP EXTENSION
# (with a POST in flight) neither hang nor crash anything, and no job is
# lost or sent twice.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use Time::HiRes qw(usleep);

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1']);
my $node = asr_node('lifecycle_jobs',
	conf => "asr.ca_file = '$emu->{ca_file}'\nasr.http_timeout = 5s\nasr.sync_interval = 3600s");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");

sub item_suffix
{
	my ($vm) = @_;
	return $node->safe_psql('postgres',
		"SELECT regexp_replace(arm_id, '^.*/', '') FROM asr_items WHERE name = '$vm'");
}

sub posts
{
	my ($path) = @_;
	my $posts = emulator_requests($emu, method => 'POST', path => $path);
	return scalar grep { ($_->{status} // '') =~ /^(202|200|dropped-after)$/ } @$posts;
}

sub worker_running
{
	return wait_for_query($node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'asr worker'", '1', 60);
}

my %item = map { $_ => item_suffix($_) } qw(app-vm-01 db-vm-01 web-vm-01);

# Emulated failovers take 140 s: at scale 1 they run through every step.
emulator_control($emu, 'POST', '/clock', { scale => 1 });
my $j1 = $node->safe_psql('postgres', "SELECT asr_failover('app-vm-01', 'latest_processed')");
my $j2 = $node->safe_psql('postgres', "SELECT asr_failover('db-vm-01', 'latest_processed')");
ok(wait_for_query($node,
		"SELECT count(*) FROM asr_jobs WHERE job_id IN ($j1, $j2) AND state = 'running'", '2', 60),
	'two failovers run');
my $pid = worker_pid($node);

# DROP DATABASE of another database: its barrier reaches the busy worker.
$node->safe_psql('postgres', 'CREATE DATABASE scratch');
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE scratch', timeout => 60);
is($ret, 0, 'DROP DATABASE of another database completes while jobs run') or diag($err);
is(worker_pid($node), $pid, 'the worker survives DROP DATABASE of another database');

# ALTER SYSTEM + reload.
$node->safe_psql('postgres', "ALTER SYSTEM SET asr.poll_interval = '2s'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_for_query($node, 'SHOW asr.poll_interval', '2s'), 'ALTER SYSTEM + reload applied');
ok(wait_for_query($node, 'SELECT 1', '1'), 'the server answers');
is(worker_pid($node), $pid, 'the worker survives the reload');

# pg_ctl stop -m fast with a POST in flight (a slow answer), then start.
emulator_control($emu, 'POST', '/faults',
	{ action => 'delay', delay_ms => 8000, match => { method => 'POST', path => 'unplannedFailover' } });
my $j3 = $node->safe_psql('postgres', "SELECT asr_failover('web-vm-01', 'latest_processed')");
ok(wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $j3", 'submitting', 60),
	'a third failover is being sent');
usleep(500_000);
ok($node->stop('fast', fail_ok => 1), 'pg_ctl stop -m fast completes with a POST in flight');
unlike(slurp_file($node->logfile), qr/terminated by signal|PANIC/,
	'no process crashed or failed on the way down');
emulator_control($emu, 'DELETE', '/faults');
$node->start;
ok(worker_running(), 'the worker is back after the restart');
emulator_control($emu, 'POST', '/clock', { scale => 600 });
for my $job ($j1, $j2, $j3)
{
	ok(wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $job", 'succeeded', 180),
		"job $job succeeds")
	  or diag($node->safe_psql('postgres',
			"SELECT state, last_error, error_message FROM asr_jobs WHERE job_id = $job"));
}
for my $vm (sort keys %item)
{
	is(posts("$item{$vm}/unplannedFailover"), 1, "$vm: exactly one failover POST");
}

# DROP EXTENSION with a commit POST in flight and jobs running: the worker
# neither hangs the DROP nor crashes; after CREATE EXTENSION it works.
emulator_control($emu, 'POST', '/clock', { scale => 1 });
emulator_control($emu, 'POST', '/faults',
	{ action => 'delay', delay_ms => 4000, match => { method => 'POST', path => 'failoverCommit' } });
my $j4 = $node->safe_psql('postgres', "SELECT asr_commit('app-vm-01')");
ok(wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $j4", 'submitting', 60),
	'a commit is being sent');
$pid = worker_pid($node);
my $log_at_drop = -s $node->logfile;
($ret, $out, $err) = $node->psql('postgres', 'DROP EXTENSION asr CASCADE', timeout => 60);
is($ret, 0, 'DROP EXTENSION completes with a POST in flight') or diag($err);
ok(wait_for_query($node,
		"SELECT query FROM pg_stat_activity WHERE backend_type = 'asr worker'",
		'asr: waiting for CREATE EXTENSION asr', 60),
	'the worker notices the extension is gone');
sleep 5;	# the delayed answer arrives for a job that no longer exists
unlike(slurp_file($node->logfile), qr/terminated by signal|PANIC/,
	'the answer to a job that no longer exists crashes nothing');
ok(worker_running(), 'a worker runs');
is(worker_pid($node), $pid,
	'the worker drops the answer to a job that no longer exists and does not even exit');
unlike(slurp_file($node->logfile, $log_at_drop), qr/asr worker.*exited with exit code|not installed in this database/,
	'no ERROR of the worker about the missing extension');
emulator_control($emu, 'DELETE', '/faults');
emulator_control($emu, 'POST', '/clock', { scale => 600 });
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");
my $j5 = $node->safe_psql('postgres', "SELECT asr_commit('db-vm-01')");
ok(wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $j5", 'succeeded', 180),
	'after CREATE EXTENSION a new job succeeds');
is(posts("$item{'db-vm-01'}/failoverCommit"), 1, 'db-vm-01: exactly one commit POST');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC/, 'no process crashed');
ok($node->stop('fast', fail_ok => 1), 'the final fast stop completes');
done_testing();
