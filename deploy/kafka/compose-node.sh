#!/bin/sh
# Starts one node of deploy/compose.yaml's three-node KRaft cluster (apache/kafka image).
#
# The image configures itself from KAFKA_* variables, but cannot put SCRAM credentials
# into the storage when it formats it; without them no node could replicate (they do so
# as User:broker over SASL) and no client could log in.  So this script writes the node's
# settings itself: the shared ones (/etc/kafka-node/server.properties, from compose.yaml's
# configs), this node's id and addresses (NODE_ID, HOST_PORT), and the JAAS entries that
# carry the brokers' and the controllers' own passwords; then it formats the storage with
# every principal's SCRAM credential (kafka-storage format --add-scram, as deploy/local.py
# --sasl does) and starts the node.  Passwords come from the env files in
# /etc/kafka-users (deploy/kafka-users/<principal>.env, mounted read-only), the same files
# the relay's services read theirs from.  Nothing here prints a password.
set -eu

USERS=/etc/kafka-users
HERE=/tmp/kafka-node  # owner-only: the files below hold passwords
CONFIG=$HERE/server.properties
CLIENT=$HERE/operator.properties

value() { # value FILE KEY: KEY's value in an env file
    sed -n "s/^$2=//p" "$1" | tail -n 1
}

umask 077
mkdir -p "$HERE"
broker_password=$(value "$USERS/broker.env" KAFKA_SASL_PASSWORD)
controller_password=$(value "$USERS/controller.env" KAFKA_SASL_PASSWORD)
scram="org.apache.kafka.common.security.scram.ScramLoginModule required"
plain="org.apache.kafka.common.security.plain.PlainLoginModule required"
{
    cat /etc/kafka-node/server.properties
    echo "node.id=$NODE_ID"
    echo "advertised.listeners=CLIENT://kafka-$NODE_ID:9092,HOST://localhost:$HOST_PORT"
    # The nodes replicate over the client listener as User:broker.
    echo "listener.name.client.scram-sha-512.sasl.jaas.config=$scram username=\"broker\" password=\"$broker_password\";"
    echo "listener.name.host.scram-sha-512.sasl.jaas.config=$scram;"
    # The controllers cannot check SCRAM (its credentials live in the metadata they
    # serve), so their listener takes PLAIN with one static user, User:controller.
    echo "listener.name.controller.plain.sasl.jaas.config=$plain username=\"controller\" password=\"$controller_password\" user_controller=\"$controller_password\";"
} > "$CONFIG"

set --
for file in "$USERS"/*.env; do
    name=$(value "$file" KAFKA_SASL_USERNAME)
    [ "$name" = controller ] && continue
    set -- "$@" --add-scram "SCRAM-SHA-512=[name=$name,password=$(value "$file" KAFKA_SASL_PASSWORD)]"
done
/opt/kafka/bin/kafka-storage.sh format --config "$CONFIG" --cluster-id "$CLUSTER_ID" \
    --ignore-formatted "$@" > /dev/null

# For the healthcheck (kafka-broker-api-versions.sh --command-config): the operator.
{
    echo "security.protocol=SASL_PLAINTEXT"
    echo "sasl.mechanism=SCRAM-SHA-512"
    echo "sasl.jaas.config=$scram username=\"operator\" password=\"$(value "$USERS/operator.env" KAFKA_SASL_PASSWORD)\";"
} > "$CLIENT"

exec /opt/kafka/bin/kafka-server-start.sh "$CONFIG"
