# The data folder as start-up reads it: config.json, access.json (or its
# previous copy) and the cloud's CA. Its code, and that of config.py and
# access.py, leaves the heap once start-up is done.
from firmware.flash import store
from firmware.seam import memory
from firmware.seam.board import log

ACCESS_MAX = 65536


def load_access(access, path, cfg):
    # Serve what parses: a bad entry is logged and skipped, never fatal. A
    # file refused as a whole (over a limit, a section of the wrong type) is
    # passed over like a corrupt one, for its previous copy.
    def check(name, obj):
        try:
            return access.parse(obj, cfg)
        except access.AccessError as e:
            log("%s refused: %s" % (name, e))
            raise

    parsed, source = store.read_json(path, ACCESS_MAX, check)
    if source == "previous":
        log("warning: %s unusable, using its previous copy" % path)
    if parsed is None:
        log("no valid %s: no logins possible until access data arrives" % path)
        return access.Access()
    data, problems = parsed
    for p in problems:  # a bounded list (bounds.PROBLEMS_MAX)
        log("access.json: %s" % p)
    return data


def load_cloud_ca(access, path):
    # DER of the CA that verifies the cloud, or None (logged).
    try:
        with open(path) as f:
            return access.der_cert(f.read(8192))
    except (OSError, access.AccessError) as e:
        log("cloud CA %s unusable (%s): no cloud link" % (path, e))
        return None


def load(folder):
    # [config, access data, cloud CA DER or None], or None when the
    # configuration is unusable. A list: app empties it once the server
    # holds what it needs, so that no stale reference keeps the start-up
    # data in the heap.
    from firmware.core import access
    from firmware.flash import config

    try:
        cfg = config.load(folder + "/config.json")
        ca = None
        if cfg["cloud_url"] and cfg["cloud_verify"]:
            ca = load_cloud_ca(access, folder + "/" + cfg["cloud_ca"])
        return [cfg, load_access(access, folder + "/access.json", cfg), ca]
    except config.ConfigError as e:
        log(str(e))
        return None
    finally:
        memory.release("flash.config", "core.access")


def data_dir(argv):
    if "--data" in argv:
        i = argv.index("--data")
        if i + 1 < len(argv):
            return argv[i + 1].rstrip("/")
    return "data"
