# On a streaming standby the worker idles and writes nothing; after
# promotion it works.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;

my $primary = asr_node('primary', allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION asr');
$primary->backup('b1');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

ok(wait_for_query($standby, "SELECT phase FROM asr_worker_status", 'standby'),
	'the standby worker knows it is on a standby');
is($standby->safe_psql('postgres',
		"SELECT query FROM pg_stat_activity WHERE backend_type = 'asr worker'"),
	'asr: hot standby, idle until promotion',
	'pg_stat_activity says why the standby worker idles');
my $pid = worker_pid($standby);
sleep 3;
is(worker_pid($standby), $pid, 'the standby worker is stable (no restart loop)');
unlike(slurp_file($standby->logfile), qr/asr worker.*(ERROR|FATAL)/,
	'the standby worker logged no error');

$standby->promote;
ok(wait_for_query($standby, "SELECT phase FROM asr_worker_status", 'idle'),
	'after promotion the worker works');
ok(wait_for_query($standby,
		"SELECT last_poll_at > pg_postmaster_start_time() FROM asr_worker_status", 't'),
	'after promotion the worker polls');

$standby->stop('fast');
$primary->stop('fast');
done_testing();
