# Polling at scale: with more than five jobs of a vault running, the worker
# polls the vault's job list ($filter StartTime, following nextLink) instead
# of one GET per job.  Proven by making every single-job GET fail while
# twelve test failovers run: they can only finish through the list.  Then
# ARM's read budget is made tiny: the worker is throttled (429,
# asr_worker_status.throttled_until), paces itself, and every job still
# finishes.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use JSON::PP;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

# a world with twelve VMs in the vault
my $top = $ENV{ASR_TOP} // abs_path(dirname(__FILE__) . '/../..');
my $world = decode_json(PostgreSQL::Test::Utils::slurp_file("$top/test/emulator/worlds/default.json"));
my $vault = $world->{subscriptions}[0]{vaults}[0];
my $template = $vault->{vms}[0];
my @vms;
for my $i (1 .. 12)
{
	my %vm = %$template;
	$vm{name} = sprintf('scale-vm-%02d', $i);
	$vm{item_name} = sprintf('scaleItem%02d', $i) . ('x' x 30);
	$vm{disks} = [ map { { %$_, name => "$vm{name}_$_->{name}" } } @{ $template->{disks} } ];
	push @vms, \%vm;
}
$vault->{vms} = \@vms;
my $dir = PostgreSQL::Test::Utils::tempdir('world');
open(my $fh, '>', "$dir/world.json") or die;
print $fh encode_json($world);
close $fh;

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1', '--world', "$dir/world.json"]);
my $node = asr_node('scale', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.http_timeout = 10s\nasr.sync_interval = 3600s");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '120 s')");

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub show
{
	my ($ids) = @_;
	diag(q1("SELECT string_agg(concat_ws(' | ', job_id, state, azure_state, progress, next_poll_at - now(), last_error), E'\n') "
		. "FROM asr_jobs WHERE job_id IN ($ids)"));
	my %n;
	$n{"$_->{method} " . ($_->{path} =~ s{^.*/(replicationJobs|replicationProtectedItems)}{$1}r =~ s/[0-9a-f-]{36}/G/gr) . " $_->{status}"}++
	  for @{ emulator_requests($emu) };
	diag(join("\n", map { "$n{$_} $_" } sort keys %n));
	diag(q1("SELECT concat_ws(' | ', requests_in_flight, last_error, throttled_until, phase) FROM asr_worker_status"));
}

is(q1("SELECT count(*) FROM asr_items"), '12', 'twelve items');

# jobs that run for a few real seconds, a job list of three per page (and
# recovery points too, which makes the final re-read of each item slow)
emulator_control($emu, 'POST', '/config', { page_size => 3 });
emulator_control($emu, 'POST', '/clock', { scale => 20 });
emulator_control($emu, 'DELETE', '/requests');
my $single = emulator_control($emu, 'POST', '/faults',
	{ action => 'status', status => 503, count => undef,
	  match => { method => 'GET', path => 'replicationJobs/[0-9a-fA-F-]{36}$' } })->{id};

my $jobs = q1("SELECT string_agg(asr_test_failover(name, 'latest')::text, ',') FROM asr_items");
ok(wait_for_query($node,
		"SELECT count(*) >= 7 FROM asr_jobs WHERE job_id IN ($jobs) AND state = 'succeeded'", 't', 90),
	'with every single-job poll failing, the jobs finish through the job list') or show($jobs);
my $lists = emulator_requests($emu, method => 'GET', path => 'replicationJobs$');
my @filtered = grep { ($_->{query_string} // '') =~ /StartTime(%20|\+| )eq/i } @$lists;
ok(scalar @filtered, 'the job list is read with a StartTime filter');
ok(scalar(grep { ($_->{query_string} // '') =~ /skipToken/i } @filtered), 'and its nextLink pages are followed');
emulator_control($emu, 'DELETE', "/faults/$single");
emulator_control($emu, 'POST', '/config', { page_size => 1000 });
ok(wait_for_query($node,
		"SELECT count(*) FROM asr_jobs WHERE job_id IN ($jobs) AND state = 'succeeded'", '12', 240),
	'all twelve jobs succeed');
is(q1("SELECT count(*) FROM asr_jobs WHERE job_id IN ($jobs) AND tasks IS NOT NULL AND progress = 100"), '12',
	'each job has its tasks and progress from Azure');

my $cleanups = q1("SELECT string_agg(asr_test_failover_cleanup(name)::text, ',') FROM asr_items");
ok(wait_for_query($node,
		"SELECT count(*) FROM asr_jobs WHERE job_id IN ($cleanups) AND state = 'succeeded'", '12', 240),
	'all twelve cleanups succeed');

# a tiny read budget: ARM throttles, the worker paces itself
emulator_control($emu, 'POST', '/throttle', { reads => [ 4, 2 ] });
emulator_control($emu, 'DELETE', '/requests');
$jobs = q1("SELECT string_agg(asr_test_failover(name, 'latest')::text, ',') FROM asr_items");
ok(wait_for_query($node,
		"SELECT throttled_until IS NOT NULL OR last_error LIKE '%429%' FROM asr_worker_status", 't', 120),
	'asr_worker_status shows the throttling');
ok(wait_for_query($node,
		"SELECT count(*) FROM asr_jobs WHERE job_id IN ($jobs) AND state = 'succeeded'", '12', 120),
	'throttled, every job still succeeds') or show($jobs);
ok(scalar(grep { ($_->{status} // '') eq '429' } @{ emulator_requests($emu) }), 'ARM did answer 429');
is(q1("SELECT count(*) FROM asr_jobs WHERE state = 'failed'"), '0', 'no job failed');
$node->stop('fast');
done_testing();
