-- The asr_azure foreign-data wrapper: every option accepted and refused in
-- each context, secrets kept off servers, and who can see a mapping's
-- options.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS asr;
RESET client_min_messages;
\set SHOW_CONTEXT never

SELECT w.fdwname, w.fdwhandler, p.proname AS validator
  FROM pg_foreign_data_wrapper w JOIN pg_proc p ON p.oid = w.fdwvalidator
 WHERE w.fdwname = 'asr_azure';

-- The wrapper itself takes no options.
ALTER FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '72f988bf-86f1-41af-91ab-2d7cd011db47');
\echo :LAST_ERROR_SQLSTATE

-- Servers ------------------------------------------------------------------
CREATE SERVER azure FOREIGN DATA WRAPPER asr_azure OPTIONS (
    tenant_id '72f988bf-86f1-41af-91ab-2d7cd011db47', cloud 'AzureCloud');
CREATE SERVER azure_gov FOREIGN DATA WRAPPER asr_azure OPTIONS (
    tenant_id '72F988BF-86F1-41AF-91AB-2D7CD011DB47', cloud 'AzureUSGovernment');
CREATE SERVER azure_china FOREIGN DATA WRAPPER asr_azure OPTIONS (
    tenant_id '72f988bf-86f1-41af-91ab-2d7cd011db47', cloud 'azurechinacloud');
CREATE SERVER azure_emu FOREIGN DATA WRAPPER asr_azure OPTIONS (
    tenant_id '72f988bf-86f1-41af-91ab-2d7cd011db47',
    arm_endpoint 'https://127.0.0.1:8443',
    login_endpoint 'https://localhost:8443/',
    imds_endpoint 'http://127.0.0.1:8080',
    arm_scope 'https://management.azure.com/.default');
CREATE SERVER azure_mi FOREIGN DATA WRAPPER asr_azure;
SELECT srvname, srvoptions FROM pg_foreign_server
 WHERE srvname LIKE 'azure%' ORDER BY srvname;

-- unknown options, and user-mapping options on a server
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant 'x');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (auth 'client_secret');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46');
\echo :LAST_ERROR_SQLSTATE
-- secrets on a server: refused, with where to put them
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (client_secret 'not-on-a-server');
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER azure OPTIONS (ADD certificate_password 'not-on-a-server');
\echo :LAST_ERROR_SQLSTATE
-- tenant ids are GUIDs
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id 'contoso.onmicrosoft.com');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '72f988bf-86f1-41af-91ab-2d7cd011db4');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '{72f988bf-86f1-41af-91ab-2d7cd011db47}');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '72f988bf-86f1-41af-91ab-2d7cd011dbzz');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '');
\echo :LAST_ERROR_SQLSTATE
-- clouds
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (cloud 'AzureGermanCloud');
\echo :LAST_ERROR_SQLSTATE
-- endpoints: https base URLs for ARM and login, plain http for IMDS
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (arm_endpoint 'http://management.azure.com');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (login_endpoint 'http://login.microsoftonline.com');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (arm_endpoint 'https://management.azure.com/subscriptions');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (login_endpoint 'https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (arm_endpoint 'https://management.azure.com/?api-version=1');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (arm_endpoint 'https://management.azure.com/#top');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (arm_endpoint 'https://user:pw@management.azure.com');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (arm_endpoint 'management.azure.com');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (arm_endpoint 'ftp://management.azure.com');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (imds_endpoint 'https://169.254.169.254');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (imds_endpoint 'http://169.254.169.254/metadata/identity/oauth2/token');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (arm_scope 'management');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER bad FOREIGN DATA WRAPPER asr_azure OPTIONS (arm_scope 'http://management.azure.com/.default');
\echo :LAST_ERROR_SQLSTATE
-- ALTER SERVER validates too
ALTER SERVER azure OPTIONS (SET cloud 'Azure');
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER azure OPTIONS (ADD arm_endpoint 'https://management.azure.com:443');
SELECT count(*) AS bad_servers FROM pg_foreign_server WHERE srvname = 'bad';

-- User mappings ------------------------------------------------------------
CREATE USER MAPPING FOR PUBLIC SERVER azure OPTIONS (
    auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
    client_secret 'fdw-test-secret~value');
CREATE USER MAPPING FOR CURRENT_USER SERVER azure OPTIONS (
    auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
    client_secret_file '/etc/asr/client-secret');
CREATE USER MAPPING FOR PUBLIC SERVER azure_gov OPTIONS (
    auth 'certificate', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
    certificate_file '/etc/asr/app.pem');
CREATE USER MAPPING FOR PUBLIC SERVER azure_china OPTIONS (
    auth 'certificate', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
    certificate_file '/etc/asr/app.pfx', certificate_password 'fdw-test-pfx-password',
    send_certificate_chain 'true', jwt_algorithm 'PS256');
CREATE USER MAPPING FOR PUBLIC SERVER azure_mi OPTIONS (auth 'managed_identity');
CREATE USER MAPPING FOR CURRENT_USER SERVER azure_mi OPTIONS (
    auth 'managed_identity', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46');
SELECT s.srvname, CASE WHEN m.umuser = 0 THEN 'public' ELSE 'current_user' END AS mapped,
       (SELECT array_agg(split_part(o, '=', 1) ORDER BY o) FROM unnest(m.umoptions) o) AS options
  FROM pg_user_mapping m JOIN pg_foreign_server s ON s.oid = m.umserver
 WHERE s.srvname LIKE 'azure%' ORDER BY 1, 2;

-- auth is required and must be one of three
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', client_secret 'x');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'password');
\echo :LAST_ERROR_SQLSTATE
-- client secret: client_id and exactly one of client_secret, client_secret_file
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'client_secret', client_secret 'x');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', client_secret 'x', client_secret_file '/etc/asr/s');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', client_secret 'x', certificate_password 'y');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', client_secret 'x', jwt_algorithm 'PS256');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'client_secret', client_id 'azure-cli', client_secret 'x');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', client_secret '');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', client_secret_file 'client-secret.txt');
\echo :LAST_ERROR_SQLSTATE
-- certificate: client_id and certificate_file; no client secret
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'certificate', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'certificate', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', certificate_password 'y');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'certificate', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', certificate_file '/etc/asr/app.pem', client_secret 'x');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'certificate', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', certificate_file '/etc/asr/app.pem', jwt_algorithm 'ES256');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'certificate', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', certificate_file '/etc/asr/app.pem', send_certificate_chain 'sometimes');
\echo :LAST_ERROR_SQLSTATE
-- managed identity: nothing secret
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'managed_identity', client_secret 'x');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'managed_identity', certificate_file '/etc/asr/app.pem');
\echo :LAST_ERROR_SQLSTATE
-- server options and unknown options on a user mapping
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'managed_identity', tenant_id '72f988bf-86f1-41af-91ab-2d7cd011db47');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_emu OPTIONS (auth 'managed_identity', password 'x');
\echo :LAST_ERROR_SQLSTATE
-- ALTER USER MAPPING checks the resulting combination
ALTER USER MAPPING FOR PUBLIC SERVER azure OPTIONS (ADD client_secret_file '/etc/asr/client-secret');
\echo :LAST_ERROR_SQLSTATE
ALTER USER MAPPING FOR PUBLIC SERVER azure OPTIONS (SET auth 'certificate');
\echo :LAST_ERROR_SQLSTATE
ALTER USER MAPPING FOR PUBLIC SERVER azure OPTIONS (DROP client_secret);
\echo :LAST_ERROR_SQLSTATE
ALTER USER MAPPING FOR PUBLIC SERVER azure OPTIONS (SET client_secret 'fdw-test-secret~rotated');
SELECT count(*) AS emu_mappings FROM pg_user_mapping m JOIN pg_foreign_server s ON s.oid = m.umserver
 WHERE s.srvname = 'azure_emu';

-- Who sees a mapping's options ---------------------------------------------
CREATE ROLE asr_fdw_dba;
CREATE ROLE asr_fdw_reader;
GRANT USAGE ON FOREIGN DATA WRAPPER asr_azure TO asr_fdw_dba;
CREATE USER MAPPING FOR asr_fdw_reader SERVER azure OPTIONS (
    auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
    client_secret 'fdw-test-secret~reader');
-- a superuser sees every mapping's options
SELECT srvname, CASE WHEN usename = current_user THEN 'me' ELSE usename END AS usename,
       umoptions IS NOT NULL AS options_visible,
       array_to_string(umoptions, ',') LIKE '%client_secret=%' AS secret_visible
  FROM pg_user_mappings WHERE srvname = 'azure' ORDER BY 2;
SET ROLE asr_fdw_reader;
-- a role without USAGE on the server sees no options, not even its own
SELECT srvname, CASE WHEN umuser = 10 THEN 'superuser' ELSE usename END AS usename, umoptions
  FROM pg_user_mappings WHERE srvname = 'azure' ORDER BY 2;
SELECT umoptions FROM pg_user_mapping;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER azure TO asr_fdw_reader;
SET ROLE asr_fdw_reader;
-- with USAGE a role sees its own mapping, still not PUBLIC's nor others'
SELECT srvname, CASE WHEN umuser = 10 THEN 'superuser' ELSE usename END AS usename,
       umoptions IS NOT NULL AS options_visible
  FROM pg_user_mappings WHERE srvname = 'azure' ORDER BY 2;
RESET ROLE;

-- Naming a file or using the machine's identity takes privileges -----------
SET ROLE asr_fdw_dba;
CREATE SERVER azure_dba FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '72f988bf-86f1-41af-91ab-2d7cd011db47');
CREATE USER MAPPING FOR asr_fdw_dba SERVER azure_dba OPTIONS (
    auth 'client_secret', client_id '04b07795-8ddb-461a-bbee-02f9e1bf7b46', client_secret 'fdw-test-secret~dba');
ALTER USER MAPPING FOR asr_fdw_dba SERVER azure_dba OPTIONS (DROP client_secret, ADD client_secret_file '/var/lib/postgresql/.pgpass');
\echo :LAST_ERROR_SQLSTATE
ALTER USER MAPPING FOR asr_fdw_dba SERVER azure_dba OPTIONS (SET auth 'certificate', DROP client_secret, ADD certificate_file '/etc/ssl/private/ssl-cert-snakeoil.key');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR PUBLIC SERVER azure_dba OPTIONS (auth 'managed_identity');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT pg_read_server_files TO asr_fdw_dba;
SET ROLE asr_fdw_dba;
ALTER USER MAPPING FOR asr_fdw_dba SERVER azure_dba OPTIONS (DROP client_secret, ADD client_secret_file '/etc/asr/client-secret');
RESET ROLE;

-- Clean up -----------------------------------------------------------------
DROP SERVER azure_dba CASCADE;
DROP USER MAPPING FOR asr_fdw_reader SERVER azure;
REVOKE USAGE ON FOREIGN SERVER azure FROM asr_fdw_reader;
REVOKE USAGE ON FOREIGN DATA WRAPPER asr_azure FROM asr_fdw_dba;
DROP ROLE asr_fdw_dba;
DROP ROLE asr_fdw_reader;
DROP USER MAPPING FOR CURRENT_USER SERVER azure;
DROP USER MAPPING FOR PUBLIC SERVER azure;
DROP USER MAPPING FOR PUBLIC SERVER azure_gov;
DROP USER MAPPING FOR PUBLIC SERVER azure_china;
DROP USER MAPPING FOR CURRENT_USER SERVER azure_mi;
DROP USER MAPPING FOR PUBLIC SERVER azure_mi;
DROP SERVER azure, azure_gov, azure_china, azure_emu, azure_mi;
