"""TF_CONFIG for a launcher: one training task per host, the first host the chief (model/cluster.py
reads it). Plain Python (no TensorFlow import), so that a job script calls it cheaply:

    export TF_CONFIG=$(python -m model.launch --hosts node0,node1,node2 --port 2222 --replica $SLURM_PROCID)
"""
import collections
import json
import socket


def tf_config(hosts, port, replica):
    """The TF_CONFIG of replica `replica` of a cluster with one task per host: the first host the
    chief, the others workers (index = replica - 1), all on `port`. Returns the JSON text."""
    if not hosts:
        raise ValueError("no hosts")
    if not 0 <= replica < len(hosts):
        raise ValueError("replica %d is not in [0, %d) (one task per host)" % (replica, len(hosts)))
    addresses = ["%s:%d" % (host, port) for host in hosts]
    cluster = collections.OrderedDict(chief=addresses[:1])
    if len(addresses) > 1:
        cluster["worker"] = addresses[1:]
    task = dict(type="chief", index=0) if replica == 0 else dict(type="worker", index=replica - 1)
    return json.dumps(dict(cluster=cluster, task=task))


def free_local_ports(count):
    """`count` distinct TCP ports on 127.0.0.1 that were free a moment ago (bound all at once, then
    released): for a cluster of local processes (the tests, bench/bench_scale.py)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def main(argv=None):
    """python -m model.launch --hosts H0,H1,... --port P --replica R: prints replica R's TF_CONFIG
    (a launcher's helper: SLURM's node list and process id, a Kubernetes indexed job's pod names and
    completion index)."""
    import argparse
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--hosts", required=True, help="comma-separated host names, the chief's first")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument("--replica", type=int, required=True, help="0 = chief, r = worker r - 1")
    args = parser.parse_args(argv)
    try:
        print(tf_config([h for h in args.hosts.split(",") if h], args.port, args.replica))
    except ValueError as error:
        parser.exit(2, "model.launch: %s\n" % error)


if __name__ == "__main__":
    main()
