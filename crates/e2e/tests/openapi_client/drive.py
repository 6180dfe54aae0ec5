"""Drive a real banger daemon with a client generated from docs/openapi.json.

Usage: python drive.py SOCKET VM_NAME
Prints one JSON object per step on stdout; exits non-zero on the first surprise.
"""

import json
import sys

import httpx

from banger_client import Client
from banger_client.api.daemon import health
from banger_client.api.vms import create_vm, get_vm, list_vms, remove_vm, start_vm, stop_vm
from banger_client.models import ApiError, CreateVmRequest, StopVmRequest, VmView


def step(name, response, **facts):
    print(json.dumps({"step": name, "status": int(response.status_code), **facts}), flush=True)


def expect(cond, what):
    if not cond:
        raise SystemExit(f"unexpected: {what}")


def main():
    socket, name = sys.argv[1], sys.argv[2]
    client = Client(
        base_url="http://banger",
        # Boots run under TCG emulation in CI: give them minutes, not seconds.
        timeout=httpx.Timeout(600.0),
        httpx_args={"transport": httpx.HTTPTransport(uds=socket)},
    )

    r = health.sync_detailed(client=client)
    expect(r.status_code == 200 and r.parsed.version, f"health: {r.content!r}")
    step("health", r, version=r.parsed.version, build=r.parsed.build)

    r = create_vm.sync_detailed(client=client, body=CreateVmRequest(name=name, start=False))
    expect(r.status_code == 201 and isinstance(r.parsed, VmView), f"create: {r.content!r}")
    step("create", r, state=r.parsed.state, location=r.headers.get("location"), id=r.parsed.id)

    r = start_vm.sync_detailed(name, client=client)
    expect(r.status_code == 200 and isinstance(r.parsed, VmView), f"start: {r.content!r}")
    step("start", r, state=r.parsed.state, agent_ready_ms=r.parsed.boot.agent_ready_ms)

    r = get_vm.sync_detailed(name, client=client)
    expect(r.status_code == 200 and isinstance(r.parsed, VmView), f"inspect: {r.content!r}")
    step("inspect", r, state=r.parsed.state, pid=r.parsed.pid,
         kernel=r.parsed.boot.kernel_release)

    r = list_vms.sync_detailed(client=client)
    expect(r.status_code == 200, f"list: {r.content!r}")
    step("list", r, names=[vm.name for vm in r.parsed])

    r = stop_vm.sync_detailed(name, client=client, body=StopVmRequest(timeout_secs=60))
    expect(r.status_code == 200 and isinstance(r.parsed, VmView), f"stop: {r.content!r}")
    step("stop", r, state=r.parsed.state)

    r = remove_vm.sync_detailed(name, client=client)
    expect(r.status_code == 200 and isinstance(r.parsed, VmView), f"rm: {r.content!r}")
    step("rm", r, state=r.parsed.state)

    # Errors arrive as the documented ApiError model.
    r = get_vm.sync_detailed(name, client=client)
    expect(r.status_code == 404 and isinstance(r.parsed, ApiError), f"gone: {r.content!r}")
    step("gone", r, kind=r.parsed.kind)

    r = create_vm.sync_detailed(client=client, body=CreateVmRequest(memory_mib=1))
    expect(r.status_code == 400 and isinstance(r.parsed, ApiError), f"invalid: {r.content!r}")
    step("invalid", r, kind=r.parsed.kind, field=r.parsed.field, message=r.parsed.message)


main()
