"""A local stand-in for a kube-apiserver, faithful for everything meshtune touches.

Run it with `python -m tests.kubeapi --kubeconfig PATH [--port N]`; see README.md beside this file.
"""
