from __future__ import annotations

import math

from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, path, reverse, reverse_lazy
from django.utils.html import format_html, format_html_join

from studies import selectors, services
from studies.forms import ImportZipForm, MethodsZipForm, OutputReplaceForm, PlanForm, StudyAdminForm
from studies.models import ImageAsset, Job, Method, Output, Scene, Study
from studies.scales import levels_for
from studies.selectors import LATE_METHOD_WARNING
from studies.services import TILE_SIZE
from studies.services.jobs import job_create


def thumbnail(asset: ImageAsset | None, size: int = 96) -> str:
    """A small preview linking to the full file.

    Full-resolution files are 5-25 MB, so the preview is the pyramid level that fits one
    tile (about 256 px) whenever the pyramid is built.
    """
    if asset is None:
        return "—"
    url = reverse("studies:image-file", kwargs={"token": asset.token, "ext": "png"})  # the rater copy
    preview = url
    if asset.tile_status == ImageAsset.TileStatus.DONE and size <= TILE_SIZE:
        top = math.ceil(math.log2(max(asset.width, asset.height, 1)))
        level = max(top - math.ceil(math.log2(max(asset.width, asset.height) / TILE_SIZE)), 0)
        preview = reverse("studies:tile-file", kwargs={"token": asset.token, "level": level, "tile": "0_0.png"})
    return format_html(
        '<a href="{}" target="_blank"><img src="{}" loading="lazy" style="max-width:{}px;max-height:{}px"></a>',
        url,
        preview,
        size,
        size,
    )


# "View site" on every admin page: there is no public home page, so the organizer's
# starting point, the list of studies (each links to its results and rater links).
admin.site.site_url = reverse_lazy("admin:studies_study_changelist")


class SceneInline(admin.TabularInline):
    model = Scene
    extra = 0
    can_delete = False
    fields = ("name", "reference_thumbnail", "width", "height")
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="reference")
    def reference_thumbnail(self, scene: Scene) -> str:
        return thumbnail(scene.reference, 64)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class MethodInline(admin.TabularInline):
    model = Method
    extra = 0
    fields = ("name", "kind", "runtime_s", "framework", "outputs_done")
    readonly_fields = ("name", "outputs_done")
    show_change_link = True

    def get_queryset(self, request):
        # Counted in the listing's one query, not two queries per method row.
        return (
            super()
            .get_queryset(request)
            .annotate(
                output_total=Count("outputs"),
                output_done=Count("outputs", filter=Q(outputs__metric_status=Output.MetricStatus.DONE)),
            )
        )

    @admin.display(description="outputs with metrics")
    def outputs_done(self, method: Method) -> str:
        return f"{method.output_done} / {method.output_total}"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


LOCKED_WHEN_OPENED = ("slug", "protocol", "scale_preset")
LOCKED_NOTE = (
    "Slug, protocol and scale are fixed since the study opened: the rater links shared on the crowd "
    "platforms name the slug, and every vote was given under this protocol and scale. They can be changed "
    "while a study is a draft."
)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "status", "protocol", "scale_preset", "n_scenes", "n_methods", "created_at")
    list_filter = ("status", "protocol")
    search_fields = ("title", "slug")
    inlines = [MethodInline, SceneInline]
    form = StudyAdminForm
    change_form_template = "admin/studies/study/change_form.html"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(scene_count=Count("scenes", distinct=True), method_count=Count("methods", distinct=True))
        )

    @admin.display(description="scenes", ordering="scene_count")
    def n_scenes(self, study: Study) -> int:
        return study.scene_count

    @admin.display(description="methods", ordering="method_count")
    def n_methods(self, study: Study) -> int:
        return study.method_count

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # Left out of a post (a form or script written before they existed), the
        # allocation settings keep their defaults: Django keeps a model default for a
        # field the data omits.
        for name in ("allocation", "warmup_votes", "smallest_difference"):
            if name in form.base_fields:
                form.base_fields[name].required = False
        return form

    def get_prepopulated_fields(self, request, obj=None):
        return {"slug": ("title",)} if obj is None else {}

    def get_readonly_fields(self, request, obj=None):
        fields = [
            *("status", "coverage", "scale_table", "rater_link", "metric_summary"),
            *("opened_at", "closed_at", "live_decision"),
        ]
        if obj is not None and obj.status != Study.Status.DRAFT:
            # Fixed once raters could arrive (LOCKED_NOTE). The decision's boundary and
            # equivalence margin too: choosing them after seeing votes would void its
            # error guarantee.
            fields += [*LOCKED_WHEN_OPENED, "smallest_difference"]
        return fields

    def get_fieldsets(self, request, obj=None):
        main = ["title", "slug", "status", "protocol", "scale_preset"]
        if obj is not None:
            main += ["coverage", "scale_table", "rater_link", "metric_summary", "opened_at", "closed_at"]
        locked = obj is not None and obj.status != Study.Status.DRAFT
        return [
            (None, {"fields": main, "description": LOCKED_NOTE if locked else ""}),
            ("Sessions", {"fields": ["ratings_per_output", "trials_per_session", "control_rate", "seed"]}),
            (
                "Allocation and stopping",
                {
                    "fields": ["allocation", "warmup_votes", "smallest_difference", "vote_budget", "stop_when_decided"]
                    + (["live_decision"] if obj is not None else [])
                },
            ),
            ("Raters see", {"fields": ["instructions", "completion_redirect_url"]}),
            ("Crowd platforms", {"fields": ["prolific_completion_code", "mturk_submit_to", "full_return_url"]}),
        ]

    @admin.display(description="coverage")
    def coverage(self, study: Study) -> str:
        from raters.capacity import study_capacity

        fill = study_capacity(study=study)
        counted = f"{fill.covered} of {fill.outputs} outputs have their {fill.target} votes"
        counted += " (outstanding trials counted)"
        if fill.full:
            return format_html("<strong id='study-full'>Full</strong>: {}. No new sessions start.", counted)
        return counted

    @admin.display(description="scale")
    def scale_table(self, study: Study) -> str:
        return format_html_join(
            "", "<div><b>{}</b> {}</div>", ((lv["score"], lv["label"]) for lv in study.scale_levels)
        )

    @admin.display(description="rater link")
    def rater_link(self, study: Study) -> str:
        try:
            url = reverse("raters:study", kwargs={"slug": study.slug})
        except NoReverseMatch:
            return "—"
        return format_html('<a href="{}" target="_blank">{}</a>', url, url)

    @admin.display(description="metrics")
    def metric_summary(self, study: Study) -> str:
        counts = selectors.study_metric_summary(study=study)
        return "{done} done, {pending} pending, {failed} failed of {total} outputs".format(**counts)

    @admin.display(description="live decision")
    def live_decision(self, study: Study) -> str:
        # The image reloads itself (static/studies/decision.js: the CSP allows no inline
        # script); the figure is drawn from the decision cached for a few seconds.
        return format_html(
            '<img id="live-decision" src="{}" data-refresh-seconds="{}" alt="Methods with their intervals and '
            'the state of each adjacent pair" style="max-width:100%"><div><a href="{}">as JSON</a> · '
            '<a href="{}">plan the number of raters</a></div>',
            reverse("admin:studies_study_decision", args=[study.pk]),
            settings.MOSAIC_DECISION_REFRESH_SECONDS,
            reverse("analysis:api-decision", kwargs={"slug": study.slug}),
            reverse("admin:studies_study_plan", args=[study.pk]),
        )

    def save_model(self, request, obj: Study, form, change: bool) -> None:
        if not change:
            obj.scale_levels = levels_for(obj.scale_preset)
        super().save_model(request, obj, form, change)

    def get_urls(self):
        own = [
            path("<int:pk>/import/", self.admin_site.admin_view(self.import_view), name="studies_study_import"),
            path(
                "<int:pk>/methods/add/",
                self.admin_site.admin_view(self.methods_add_view),
                name="studies_study_methods_add",
            ),
            path("<int:pk>/jobs/", self.admin_site.admin_view(self.jobs_view), name="studies_study_jobs"),
            path("<int:pk>/jobs.json", self.admin_site.admin_view(self.jobs_json_view), name="studies_study_jobs_json"),
            path("<int:pk>/open/", self.admin_site.admin_view(self.open_view), name="studies_study_open"),
            path("<int:pk>/close/", self.admin_site.admin_view(self.close_view), name="studies_study_close"),
            path(
                "<int:pk>/sessions.csv",
                self.admin_site.admin_view(self.sessions_csv_view),
                name="studies_study_sessions_csv",
            ),
            path(
                "<int:pk>/decision.png", self.admin_site.admin_view(self.decision_view), name="studies_study_decision"
            ),
            path("<int:pk>/plan/", self.admin_site.admin_view(self.plan_view), name="studies_study_plan"),
        ]
        return own + super().get_urls()

    def _change_url(self, study: Study) -> str:
        return reverse("admin:studies_study_change", args=[study.pk])

    def import_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._zip_page(
            request,
            pk,
            form_class=ImportZipForm,
            kind=Job.Kind.IMPORT,
            template="import.html",
            title="Import images into {}",
        )

    def methods_add_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """A late team: its outputs, one per scene, into a draft or open study."""
        return self._zip_page(
            request,
            pk,
            form_class=MethodsZipForm,
            kind=Job.Kind.METHODS_ADD,
            template="methods_add.html",
            title="Add a method to {}",
        )

    def _zip_page(self, request: HttpRequest, pk: int, *, form_class, kind: str, template: str, title: str):
        study = get_object_or_404(Study, pk=pk)
        if not self.has_change_permission(request, study):
            return HttpResponse(status=403)
        problems: list[str] = []
        if request.method == "POST":
            form = form_class(request.POST, request.FILES)
            if form.is_valid():
                # The request only saves the zip and queues its job: checking and storing
                # every file runs on a Celery worker, and the Jobs page shows its progress.
                try:
                    job = job_create(study=study, kind=kind, upload=form.cleaned_data["archive"], user=request.user)
                except services.StudyStateError as exc:
                    messages.error(request, str(exc))
                    problems = [str(exc)]
                else:
                    return self._to_job(request, study, job)
        else:
            form = form_class()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": study,
            "title": title.format(study),
            "form": form,
            "problems": problems,
            "late_warning": LATE_METHOD_WARNING.format(target=study.ratings_per_output)
            if study.status == Study.Status.OPEN
            else "",
            "scene_names": list(study.scenes.values_list("name", flat=True)),
            "method_names": list(study.methods.values_list("name", flat=True)),
        }
        return render(request, f"admin/studies/study/{template}", context)

    @staticmethod
    def _to_job(request: HttpRequest, study: Study, job: Job) -> HttpResponse:
        messages.info(
            request,
            f"Uploaded {job.source_name}: a worker checks and stores it now, and this page shows its progress.",
        )
        return HttpResponseRedirect(reverse("admin:studies_study_jobs", args=[study.pk]) + f"#job-{job.pk}")

    def jobs_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The study's long work: upload jobs, PSNR/SSIM, tile pyramids, analysis runs."""
        study = get_object_or_404(Study, pk=pk)
        if not self.has_view_permission(request, study):
            return HttpResponse(status=403)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": study,
            "title": f"Jobs of {study}",
            "progress": selectors.study_progress(study=study),
            "progress_url": reverse("admin:studies_study_jobs_json", args=[study.pk]),
            "refresh_ms": settings.MOSAIC_JOBS_REFRESH_MS,
        }
        return render(request, "admin/studies/study/jobs.html", context)

    def jobs_json_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """What the Jobs page shows, for static/studies/jobs.js to refresh it (staff only,
        as every admin view; never cached)."""
        study = get_object_or_404(Study, pk=pk)
        if not self.has_view_permission(request, study):
            return JsonResponse({"detail": "Not allowed."}, status=403)
        return JsonResponse(selectors.study_progress(study=study))

    def _transition(self, request: HttpRequest, pk: int, action) -> HttpResponse:
        study = get_object_or_404(Study, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, study):
            return HttpResponse("Use the buttons on the study page.", status=405)
        try:
            study = action(study=study)
        except services.StudyStateError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"'{study.title}' is now {study.get_status_display().lower()}.")
        return HttpResponseRedirect(self._change_url(study))

    def decision_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        from analysis.decision_plot import decision_figure
        from analysis.plots import render as render_figure
        from raters.allocation import decision_summary

        study = get_object_or_404(Study, pk=pk)
        if not self.has_view_permission(request, study):
            return HttpResponse(status=403)
        summary = decision_summary(study=study)
        figure = decision_figure(summary, scale=(study.scale_min, study.scale_max))
        # The admin already marks every page it serves uncacheable (no-store).
        return HttpResponse(render_figure(figure, "png"), content_type="image/png")

    def plan_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        study = get_object_or_404(Study, pk=pk)
        if not self.has_view_permission(request, study):
            return HttpResponse(status=403)
        form = PlanForm(request.GET or None)
        plan, problem = None, ""
        if form.is_valid():
            try:
                plan = self._plan(study, form.cleaned_data)
            except ValueError as exc:
                problem = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": study,
            "title": f"Plan the raters of {study}",
            "form": form,
            "plan": plan,
            "problem": problem,
        }
        return render(request, "admin/studies/study/plan.html", context)

    def _plan(self, study: Study, data: dict) -> list[dict]:
        from analysis.frames import ratings_frame
        from analysis.stats.planner import plan_study

        methods = study.methods.exclude(kind__in=Method.CONTROL_KINDS).count()
        scenes = study.scenes.count()
        if methods < 2 or scenes < 1:
            raise ValueError("Import at least two methods and one scene first.")
        pilot = None
        if data["use_votes"]:
            frame = ratings_frame(study)
            pilot = frame[(frame["kind"] == "rating") & ~frame["method_kind"].isin(Method.CONTROL_KINDS)]
            if pilot["rater"].nunique() < 2:
                raise ValueError("The study has fewer than two raters' votes: plan from assumptions instead.")
        controls = min(round(study.trials_per_session * study.control_rate), study.trials_per_session - 1)
        table = plan_study(
            pilot=pilot,
            n_methods=methods,
            difference=data["difference"],
            scenes=scenes,
            trials_per_session=max(study.trials_per_session - controls, 1),
            smallest_difference=study.smallest_difference,
            warmup_votes=study.warmup_votes,
            rater_bias_sd=data["rater_bias_sd"],
            inconsistency=(data["inconsistency_low"], data["inconsistency_high"]),
            scene_sd=data["scene_sd"],
            scale=(study.scale_min, study.scale_max),
            reps=data["reps"],
            max_raters=400,
            check_every=5,
            seed=study.seed,
        )
        return [
            {
                "allocation": row["allocation"],
                "raters": None if math.isnan(row["raters"]) else int(row["raters"]),
                "votes": None if math.isnan(row["raters"]) else int(row["raters"] * study.trials_per_session),
                "p": row["p_separated_at_max"],
            }
            for row in table.to_dict("records")
        ]

    def open_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        response = self._transition(request, pk, services.study_open)
        study = Study.objects.filter(pk=pk, status=Study.Status.OPEN).first()
        if study is not None and request.method == "POST":
            for warning in selectors.study_open_warnings(study=study):
                messages.warning(request, warning)
        return response

    def sessions_csv_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Every session with its votes, failed controls and a suggested approve/reject."""
        from raters.payments import study_payment_csv  # brings the analysis's pandas: not at import

        study = get_object_or_404(Study, pk=pk)
        if not self.has_view_permission(request, study):
            return HttpResponse(status=403)
        response = HttpResponse(study_payment_csv(study=study), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-sessions.csv"'
        return response

    def close_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._transition(request, pk, services.study_close)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        results_url = None
        if obj is not None:
            try:
                results_url = reverse("analysis:study-results", kwargs={"slug": obj.slug})
            except NoReverseMatch:
                results_url = None
        context["results_url"] = results_url
        if obj is not None:
            from raters.platforms import platform_links

            try:
                entry = request.build_absolute_uri(reverse("raters:study", kwargs={"slug": obj.slug}))
            except NoReverseMatch:
                entry = None
            context["platform_links"] = platform_links(entry) if entry else []
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(Output)
class OutputAdmin(admin.ModelAdmin):
    list_display = ("preview", "method", "scene", "psnr_display", "ssim_display", "metric_status", "metric_error")
    list_filter = ("method__study", "metric_status", "method__kind")
    search_fields = ("method__name", "scene__name")
    list_select_related = ("method", "scene", "image")
    readonly_fields = (
        "method",
        "scene",
        "preview_large",
        "sha256",
        "psnr",
        "ssim",
        "metric_status",
        "metric_error",
        "metric_settings",
    )
    fields = readonly_fields
    list_per_page = 50
    change_form_template = "admin/studies/output/change_form.html"

    def get_urls(self):
        replace = path(
            "<int:pk>/replace/", self.admin_site.admin_view(self.replace_view), name="studies_output_replace"
        )
        return [replace, *super().get_urls()]

    def replace_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Upload a new image for one output while its study is a draft."""
        output = get_object_or_404(Output.objects.select_related("method__study", "scene__reference", "image"), pk=pk)
        if not self.has_change_permission(request, output):
            return HttpResponse(status=403)
        change_url = reverse("admin:studies_output_change", args=[output.pk])
        problems: list[str] = []
        form = OutputReplaceForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            study = output.method.study
            try:
                job = job_create(
                    study=study,
                    kind=Job.Kind.OUTPUT_REPLACE,
                    output=output,
                    upload=form.cleaned_data["image"],
                    user=request.user,
                )
            except services.StudyStateError as exc:
                problems = [str(exc)]
                messages.error(request, "Nothing was replaced.")
            else:
                return StudyAdmin._to_job(request, study, job)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": output,
            "title": f"Replace the image of {output}",
            "form": form,
            "problems": problems,
            "change_url": change_url,
            "draft": output.method.study.status == Study.Status.DRAFT,
        }
        return render(request, "admin/studies/output/replace.html", context)

    @admin.display(description="image")
    def preview(self, output: Output) -> str:
        return thumbnail(output.image, 72)

    @admin.display(description="image")
    def preview_large(self, output: Output) -> str:
        return thumbnail(output.image, 480)

    @admin.display(description="PSNR (dB)", ordering="psnr")
    def psnr_display(self, output: Output) -> str:
        if output.metric_status != Output.MetricStatus.DONE:
            return "—"
        return "∞ (identical)" if output.psnr is None else f"{output.psnr:.2f}"

    @admin.display(description="SSIM", ordering="ssim")
    def ssim_display(self, output: Output) -> str:
        return "—" if output.ssim is None else f"{output.ssim:.4f}"

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Scene)
class SceneAdmin(admin.ModelAdmin):
    list_display = ("preview", "name", "study", "width", "height")
    list_filter = ("study",)
    list_select_related = ("study", "reference")
    readonly_fields = ("study", "name", "preview_large", "input_preview", "width", "height")
    fields = readonly_fields

    @admin.display(description="reference")
    def preview(self, scene: Scene) -> str:
        return thumbnail(scene.reference, 72)

    @admin.display(description="reference")
    def preview_large(self, scene: Scene) -> str:
        return thumbnail(scene.reference, 480)

    @admin.display(description="input")
    def input_preview(self, scene: Scene) -> str:
        return thumbnail(scene.input, 240)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Method)
class MethodAdmin(admin.ModelAdmin):
    list_display = ("name", "study", "kind", "runtime_s", "framework")
    list_filter = ("study", "kind")
    readonly_fields = ("study", "name")
    fields = ("study", "name", "kind", "runtime_s", "framework")

    def has_add_permission(self, request) -> bool:
        return False
