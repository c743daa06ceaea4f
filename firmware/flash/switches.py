# The anonymous/insecure access switches, persisted in the data folder.
# A missing or corrupt file means both off: the safe side.
from firmware.flash import store

NAMES = ("anonymous", "insecure")


class Switches:
    def __init__(self, path, log):
        self.path = path
        self.values = {"anonymous": False, "insecure": False}
        obj, source = store.read_json(path, 1024)
        if source == "previous":
            log("warning: %s unreadable, using its previous copy" % path)
        if not isinstance(obj, dict):
            log("switches: no valid %s, anonymous and insecure access off" % path)
            return
        for name in NAMES:
            if obj.get(name) is True:
                self.values[name] = True

    def get(self, name):
        return self.values[name]

    def set(self, name, on):
        # Persist first: a switch that says on must survive a restart.
        values = dict(self.values)
        values[name] = on
        store.write_json(self.path, values)
        self.values = values
