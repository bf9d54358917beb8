# High availability: a streaming replica carries the job tables and its
# worker sends nothing; after promotion it resumes the in-flight jobs (one
# running, one whose POST was in flight when the primary died) without
# re-sending them; the demoted primary, rewound and back as a standby of the
# new primary, sends nothing either.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use Time::HiRes qw(usleep);
use JSON::PP;

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1']);
my $conf = "asr.ca_file = '$emu->{ca_file}'\nasr.http_timeout = 5s\nasr.sync_interval = 3600s\nwal_keep_size = 256MB";
my $primary = asr_node('ha_primary', allows_streaming => 1, conf => $conf);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($primary, $emu);
$primary->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");

$primary->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('ha_standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);
ok(wait_for_query($standby, 'SELECT phase FROM asr_worker_status', 'standby'),
	'the replica worker idles as a standby');

# The last sequence number in the emulator's request log.
sub last_seq
{
	my $all = emulator_requests($emu);
	return @$all ? $all->[-1]{seq} : 0;
}

# Requests the emulator received after sequence number $seq.
sub requests_since
{
	my ($seq) = @_;
	return [ grep { $_->{seq} > $seq } @{ emulator_requests($emu) } ];
}

# Watch the emulator for $seconds and return what reached it.
sub quiet_for
{
	my ($seconds) = @_;
	my $mark = last_seq();
	sleep $seconds;
	return requests_since($mark);
}

sub item_suffix
{
	my ($node, $vm) = @_;
	return $node->safe_psql('postgres',
		"SELECT regexp_replace(arm_id, '^.*/', '') FROM asr_items WHERE name = '$vm'");
}

sub accepted_posts
{
	my ($item) = @_;
	my $posts = emulator_requests($emu, method => 'POST', path => "$item/unplannedFailover");
	return scalar grep { ($_->{status} // '') =~ /^(202|200|dropped-after)$/ } @$posts;
}

# Emulated failovers take 140 s: at scale 1 they stay running through the
# whole switchover.
emulator_control($emu, 'POST', '/clock', { scale => 1 });

# app-vm-01: accepted by Azure and running on the old primary.
my $running = $primary->safe_psql('postgres', "SELECT asr_failover('app-vm-01', 'latest_processed')");
ok(wait_for_query($primary,
		"SELECT state = 'running' AND azure_job IS NOT NULL FROM asr_jobs WHERE job_id = $running", 't', 60),
	'a failover runs on the primary');

# db-vm-01: its POST is in flight (slow to answer) when the primary dies.
emulator_control($emu, 'POST', '/faults',
	{ action => 'delay', delay_ms => 4000, match => { method => 'POST', path => 'unplannedFailover' } });
my $inflight = $primary->safe_psql('postgres', "SELECT asr_failover('db-vm-01', 'latest_processed')");
ok(wait_for_query($primary, "SELECT state FROM asr_jobs WHERE job_id = $inflight", 'submitting', 60),
	'a second failover is being sent');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres',
		"SELECT string_agg(state, ',' ORDER BY job_id) FROM asr_jobs WHERE job_id IN ($running, $inflight)"),
	'running,submitting', 'the replica carries both jobs in their states');
$primary->stop('immediate');
emulator_control($emu, 'DELETE', '/faults');

# Let the delayed POST finish on the emulator's side, then watch.
sleep 5;
my $seen = quiet_for(6);
is(scalar @$seen, 0, 'with the primary gone, the replica worker sends nothing')
	or diag(explain([ map { "$_->{method} $_->{path}" } @$seen ]));
is($standby->safe_psql('postgres', 'SELECT phase FROM asr_worker_status'), 'standby',
	'the replica worker still idles');
is(accepted_posts(item_suffix($standby, 'db-vm-01')), 1,
	'the in-flight POST reached Azure once before the primary died');

# Promotion: the new primary resumes both jobs and re-sends neither.
my $mark = last_seq();
$standby->promote;
emulator_control($emu, 'POST', '/clock', { scale => 600 });
for my $job ($running, $inflight)
{
	ok(wait_for_query($standby, "SELECT state FROM asr_jobs WHERE job_id = $job", 'succeeded', 180),
		"job $job finishes on the promoted replica")
	  or diag($standby->safe_psql('postgres',
			"SELECT state, last_error, error_message FROM asr_jobs WHERE job_id = $job"));
}
for my $vm ('app-vm-01', 'db-vm-01')
{
	is(accepted_posts(item_suffix($standby, $vm)), 1, "$vm: exactly one failover POST in all");
}
my @after = @{ requests_since($mark) };
is(scalar(grep { $_->{method} eq 'POST' && $_->{path} =~ /unplannedFailover$/ } @after), 0,
	'the promoted replica sent no failover POST');
cmp_ok(scalar(grep { $_->{method} eq 'GET' && $_->{listener} eq 'arm' } @after), '>', 0,
	'the promoted replica followed the jobs');
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM asr_job_events WHERE job_id IN ($running, $inflight) AND state = 'queued'"),
	'2', 'no job was queued again');

# The demoted primary comes back, rewound, as a standby of the new primary.
# A job runs on the new primary; with the new primary stopped, the old
# one's worker sends nothing.
emulator_control($emu, 'POST', '/clock', { scale => 1 });
my $third = $standby->safe_psql('postgres', "SELECT asr_failover('web-vm-01', 'latest_processed')");
ok(wait_for_query($standby, "SELECT state FROM asr_jobs WHERE job_id = $third", 'running', 60),
	'a new failover runs on the new primary');

my $pgdata = $primary->data_dir;
my $src = $standby->connstr('postgres');
# pg_rewind copies the source's configuration files: keep the node's own
my $saved = slurp_file("$pgdata/postgresql.conf");
command_ok([ 'pg_rewind', '--target-pgdata', $pgdata, '--source-server', $src ],
	'pg_rewind the demoted primary');
open(my $fh, '>', "$pgdata/postgresql.conf") or die "postgresql.conf: $!";
print $fh $saved;
close($fh);
$primary->enable_streaming($standby);
$primary->start;
$standby->wait_for_catchup($primary);
ok(wait_for_query($primary, 'SELECT phase FROM asr_worker_status', 'standby'),
	'the demoted primary worker idles as a standby');
is($primary->safe_psql('postgres', "SELECT state FROM asr_jobs WHERE job_id = $third"), 'running',
	'it carries the new job');
$standby->stop('fast');
$seen = quiet_for(6);
is(scalar @$seen, 0, 'the demoted primary worker sends nothing')
	or diag(explain([ map { "$_->{method} $_->{path}" } @$seen ]));

$standby->start;
emulator_control($emu, 'POST', '/clock', { scale => 600 });
ok(wait_for_query($standby, "SELECT state FROM asr_jobs WHERE job_id = $third", 'succeeded', 180),
	'the new job finishes on the new primary');
is(accepted_posts(item_suffix($standby, 'web-vm-01')), 1, 'web-vm-01: exactly one failover POST');
is($standby->safe_psql('postgres', "SELECT count(*) FROM asr_jobs WHERE state <> 'succeeded'"),
	'0', 'no job lost or failed');
for my $node ($primary, $standby)
{
	unlike(slurp_file($node->logfile), qr/terminated by signal|PANIC/,
		$node->name . ': no process crashed');
}
$primary->stop('fast');
$standby->stop('fast');
done_testing();
