"""The rater tables as they stand, in one migration: it replaces 0001 to 0007, which a
database migrated before it has applied (Django then counts this one as applied too)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    replaces = [
        ('raters', '0001_initial'),
        ('raters', '0002_session_active_index'),
        ('raters', '0003_trial_load_indexes'),
        ('raters', '0004_output_load'),
        ('raters', '0005_vote_function'),
        ('raters', '0006_vote_by_token'),
        ('raters', '0007_vote_progress_per_trial'),
    ]

    dependencies = [
        ('studies', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='OutputLoad',
            fields=[
                ('output', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='load', serialize=False, to='studies.output')),
                ('trials', models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='Rater',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('platform', models.CharField(choices=[('direct', 'Direct link'), ('prolific', 'Prolific'), ('mturk', 'Amazon MTurk'), ('imported', 'Imported ratings')], default='direct', max_length=10)),
                ('external_id', models.CharField(blank=True, max_length=200)),
                ('screen_width', models.PositiveIntegerField(blank=True, null=True)),
                ('screen_height', models.PositiveIntegerField(blank=True, null=True)),
                ('viewport_width', models.PositiveIntegerField(blank=True, null=True)),
                ('viewport_height', models.PositiveIntegerField(blank=True, null=True)),
                ('device_pixel_ratio', models.FloatField(blank=True, null=True)),
                ('user_agent', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'constraints': [models.UniqueConstraint(condition=models.Q(('external_id', ''), _negated=True), fields=('platform', 'external_id'), name='rater_unique_external_id')],
            },
        ),
        migrations.CreateModel(
            name='Session',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token', models.CharField(max_length=64, unique=True)),
                ('status', models.CharField(choices=[('training', 'Training'), ('rating', 'Rating'), ('complete', 'Complete'), ('abandoned', 'Abandoned')], default='training', max_length=10)),
                ('completion_code', models.CharField(blank=True, max_length=32)),
                ('platform_study_id', models.CharField(blank=True, max_length=200)),
                ('platform_session_id', models.CharField(blank=True, max_length=200)),
                ('started_at', models.DateTimeField(auto_now_add=True)),
                ('last_seen_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('completed_at', models.DateTimeField(blank=True, null=True)),
                ('rater', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sessions', to='raters.rater')),
                ('study', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sessions', to='studies.study')),
            ],
        ),
        migrations.CreateModel(
            name='Trial',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('position', models.PositiveIntegerField()),
                ('kind', models.CharField(choices=[('training', 'Training'), ('rating', 'Rating'), ('control', 'Control')], default='rating', max_length=10)),
                ('token', models.CharField(max_length=40, unique=True)),
                ('released_at', models.DateTimeField(blank=True, null=True)),
                ('output', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='trials', to='studies.output')),
                ('session', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='trials', to='raters.session')),
            ],
            options={
                'ordering': ['session', 'position'],
            },
        ),
        migrations.CreateModel(
            name='Rating',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('score', models.SmallIntegerField()),
                ('response_ms', models.PositiveIntegerField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('trial', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='rating', to='raters.trial')),
            ],
        ),
        migrations.AddIndex(
            model_name='session',
            index=models.Index(condition=models.Q(('status__in', ('training', 'rating'))), fields=['study', 'last_seen_at'], name='session_active_last_seen'),
        ),
        migrations.AddConstraint(
            model_name='session',
            constraint=models.UniqueConstraint(fields=('rater', 'study'), name='session_one_per_rater_study'),
        ),
        migrations.AddConstraint(
            model_name='trial',
            constraint=models.UniqueConstraint(fields=('session', 'position'), name='trial_unique_position'),
        ),
    ]
