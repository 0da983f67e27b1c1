"""What runs inside JupyterHub's own process (root): the password check and the spawner.

jupyterhub_config.py, written by pktlab.workshop.hubconf, names these classes; nothing else in
pktlab imports this module (it needs the `jupyterhub` package).

- PktlabAuthenticator: the hub's own passwords. The learners' accounts have no system password
  (PAM would refuse them), so the hub checks the scrypt hashes pktlab wrote (root-only), read
  again at every login: a password changed while the hub runs counts at once.
- PktlabSpawner: JupyterHub's LocalProcessSpawner (each learner's server as their own uid, with
  their own group and the learners' group, in their home) plus rlimits, set before the uid
  changes and inherited by the server's kernels and terminals (hubconf.SERVER_RLIMITS):
  RLIMIT_NPROC per learner (threads and processes of that uid: a fork bomb stops there),
  RLIMIT_NOFILE and RLIMIT_FSIZE per process, RLIMIT_CORE 0. Memory is held by `up`'s watchdog
  (pktlab.workshop.memory), not here; CPU is not limited per learner on this host (cgroup v2
  has only the hugetlb controller and there is no systemd): see README, "Running a workshop".
"""

import json
import os
import resource

from jupyterhub.auth import Authenticator
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Integer, Unicode

from .accounts import check_password
from .hubconf import SERVER_RLIMITS


class PktlabAuthenticator(Authenticator):
    """Username and password checked against pktlab's hashes (password_file)."""

    password_file = Unicode("", config=True, help="the hashes (JSON: {user: scrypt entry})")

    def _entries(self):
        try:
            with open(self.password_file) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            self.log.error("pktlab: cannot read %s: %s", self.password_file, e)
            return {}

    async def authenticate(self, handler, data):
        user = str((data or {}).get("username", "")).strip()
        password = (data or {}).get("password", "")
        entry = self._entries().get(user)
        if check_password(entry, password) and entry is not None:
            return user
        self.log.warning("pktlab: failed login for %r", user[:64])
        return None


class PktlabSpawner(LocalProcessSpawner):
    """LocalProcessSpawner with per-learner limits set before the uid changes."""

    nproc_limit = Integer(SERVER_RLIMITS["nproc_limit"], config=True,
                          help="RLIMIT_NPROC of each learner's uid")
    nofile_limit = Integer(SERVER_RLIMITS["nofile_limit"], config=True,
                           help="RLIMIT_NOFILE of each of a learner's processes")
    fsize_limit = Integer(SERVER_RLIMITS["fsize_limit"], config=True,
                          help="RLIMIT_FSIZE (bytes) of each of a learner's processes")

    def make_preexec_fn(self, name):
        become_learner = super().make_preexec_fn(name)
        limits = ((resource.RLIMIT_NPROC, self.nproc_limit),
                  (resource.RLIMIT_NOFILE, self.nofile_limit),
                  (resource.RLIMIT_FSIZE, self.fsize_limit), (resource.RLIMIT_CORE, 0))

        def preexec():
            for which, value in limits:
                resource.setrlimit(which, (value, value))
            become_learner()
        return preexec

    def user_env(self, env):
        """The learner's own HOME and SHELL (LocalProcessSpawner's), and their copy of the
        lessons for `pktlab lessons reset` in their terminal."""
        env = super().user_env(env)
        if env.get("HOME"):
            env["PKTLAB_WORKDIR"] = os.path.join(env["HOME"], "lessons")
        return env
