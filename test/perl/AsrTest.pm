# AsrTest.pm: shared set-up for asr's TAP tests (PostgreSQL::Test::Cluster).
#
# Every test gets clusters with asr preloaded and asr.database = 'postgres',
# plus small waiting helpers that poll with a deadline instead of sleeping
# a fixed time.
package AsrTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

our @EXPORT = qw(asr_node worker_pid wait_for_query);

# A new node with asr preloaded; extra postgresql.conf lines may follow.
sub asr_node
{
	my ($name, %params) = @_;
	my $conf = delete $params{conf} // '';
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%params);
	$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'asr'
asr.database = 'postgres'
asr.poll_interval = 1s
restart_after_crash = on
$conf
CONF
	return $node;
}

# The pid of the running asr worker, or '' when none runs.
sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'asr worker'");
}

# Poll $query until it returns $expected or $timeout seconds pass.  Errors
# (a server in crash recovery refuses connections) count as "not yet".
sub wait_for_query
{
	my ($node, $query, $expected, $timeout) = @_;
	$timeout //= 60;
	my $deadline = time() + $timeout;
	my $got = '';
	while (time() < $deadline)
	{
		my ($ret, $out, $err) = $node->psql('postgres', $query);
		$got = $ret == 0 ? $out : "error: $err";
		return 1 if $ret == 0 && $out eq $expected;
		usleep(100_000);
	}
	diag("waited ${timeout}s for [$query] = [$expected], last got [$got]");
	return 0;
}

1;
