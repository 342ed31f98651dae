"""/exec/: the executive summary (leadership). Server-rendered, printable, no JavaScript needed."""
from __future__ import annotations

from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET

from incidents import exec_summary
from shopswift_ops.access import requires


@requires("exec:view")
@require_GET
def exec_page(request):
    start = None
    error = None
    if request.GET.get("from"):
        start = parse_datetime(request.GET["from"].replace("Z", "+00:00"))
        if start is None or start.tzinfo is None or start > timezone.now():
            error = "from: an RFC 3339 time with offset, in the past"
            start = None
    context = exec_summary.build(start=start)
    context["error"] = error
    return render(request, "incidents/exec.html", context, status=400 if error else 200)
