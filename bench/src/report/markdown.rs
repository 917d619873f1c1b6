//! `SUMMARY.md`: the headline figures, the tables behind them, the plots, and the sizing
//! arithmetic written out.

use std::fmt::Write as _;

use super::{ExclHsmMethod, Report};
use crate::record::SegmentRecord;

/// Thousands separators, no decimals.
pub fn int(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < -0.5 {
        out.insert(0, '-');
    }
    out
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

fn or_dash<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

/// One row of the sweep or tax-day table; returns whether its "excl. HSM" figure had to use
/// the standalone C_Sign CPU (marked †).
fn segment_row(
    out: &mut String,
    first: &str,
    s: &SegmentRecord,
    standalone_cpu_us_per_sign: f64,
    extra: &str,
) -> bool {
    let l = &s.latency;
    let excl = super::excl_hsm(s, standalone_cpu_us_per_sign);
    let _ = writeln!(
        out,
        "| {first} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |{extra}",
        int(s.offered_rate),
        int(s.goodput),
        ms(l.p50_ms),
        ms(l.p99_ms),
        ms(l.p999_ms),
        ms(l.max_ms),
        pct(s.failure_rate()),
        pct(s.shed_rate()),
        or_dash(s.server_cpu_us_per_request(), |u| format!("{u:.0}")),
        or_dash(s.hsm_cpu_us_per_signature(), |u| format!("{u:.0}")),
        or_dash(excl, |(u, m)| format!("{u:.0}{}", if m == ExclHsmMethod::Standalone { "†" } else { "" })),
    );
    excl.is_some_and(|e| e.1 == ExclHsmMethod::Standalone)
}

/// The footnote for rows marked †.
fn dagger_note(out: &mut String, any: bool, standalone_cpu_us_per_sign: f64) {
    if any {
        let _ = writeln!(
            out,
            "
† no C_Sign CPU from segl for this window: segl CPU − {standalone_cpu_us_per_sign:.0} µs, one C_Sign measured standalone (overstates segl's own CPU)."
        );
    }
}

/// How segl's load was carried, for the report's text.
fn transport(report: &Report) -> String {
    let (st, m) = (&report.settings, &report.measurements);
    if st.tls {
        if m.server.transport.is_empty() {
            "TLS".into()
        } else {
            m.server.transport.clone()
        }
    } else {
        "plain HTTP (`--plain`, or a report from before TLS was the default; TLS is not included)".into()
    }
}

/// The Markdown summary.
pub fn summary(report: &Report) -> String {
    let (st, m, r) = (&report.settings, &report.measurements, &report.results);
    let mut o = String::new();
    let date = m.started_at.get(..10).unwrap_or(&m.started_at);
    // Older reports did not record the machine's own count: they ran on all of it.
    let machine_cpus = if m.machine.machine_cpus == 0 { m.machine.cpus } else { m.machine.machine_cpus };
    let _ = writeln!(o, "# segl capacity report, {date}, {machine_cpus} CPUs ({})\n", m.machine.cpu_model);
    let pinned = if m.machine.cpus < machine_cpus {
        format!(
            "; segl and the load generator were pinned to {} of them (the notes beside this report say what ran on \
             the others)",
            m.machine.cpus
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "Machine: {}, {machine_cpus} logical CPUs{pinned}, {} GiB, Linux {}, host `{}`. **This machine is shared with other \
         engineers' builds and tests and is noisy** (load average {} at the start, {} at the end); the load generator \
         runs on the same {} CPUs as segl. Every comparison below is between figures measured in the same run.\n",
        m.machine.cpu_model,
        m.machine.memory_gib,
        m.machine.kernel,
        m.machine.hostname,
        m.machine.load_average,
        m.load_average_at_end,
        m.machine.cpus
    );
    let _ = writeln!(
        o,
        "segl {}{}: {} executor cores, HSM module `{}` ({} signer), token `{}`, key `{}`, server log level `{}`. \
         Started {}.\n\nCommand: `{}`\n",
        m.server.version,
        or_dash(m.server.commit.as_ref(), |c| format!(" (commit {c})")),
        m.server.cores,
        m.server.hsm_module,
        m.server.signer.as_str(),
        m.server.token,
        m.server.key,
        st.server_log_level,
        m.started_at,
        m.command
    );
    let _ = writeln!(
        o,
        "Load to segl: {}, {} connections{}.\n",
        transport(report),
        st.engine.connections,
        if st.engine.keep_alive { " kept alive" } else { ", a new one per request" }
    );

    if m.server.exited {
        let _ =
            writeln!(o, "**segl exited during the run**: the figures after that point measure nothing.\n");
    }
    let _ = writeln!(o, "## Headline\n\n| figure | value |\n|---|---|");
    let _ = writeln!(
        o,
        "| capacity per node at p99 ≤ {} ms | **{}** |",
        st.criteria.p99_target_ms,
        or_dash(r.capacity, |c| format!(
            "{} issued cards/s (knee step offered {}/s)",
            int(c),
            int(r.knee_rate.unwrap_or(f64::NAN))
        ))
    );
    let _ = writeln!(
        o,
        "| saturated issuing rate (any latency) | {}/s{} |",
        int(r.saturated_goodput),
        or_dash(m.saturation.as_ref(), |s| format!(
            " (saturation step: {}/s offered, {}/s issued, {} failed)",
            int(s.rate),
            int(s.result.goodput),
            pct(s.result.failure_rate())
        ))
    );
    let _ = writeln!(
        o,
        "| raw C_Sign on the same token, {} sessions, same run | {}/s, the better of before the sweep ({}/s) and after the saturation step ({}/s); one session {}/s |",
        m.hsm.before_all.sessions,
        int(r.raw_sign_rate),
        int(m.hsm.before_all.per_sec),
        int(m.hsm.after_all.per_sec),
        int(r.raw_sign_rate_one)
    );
    let _ = writeln!(
        o,
        "| issued cards per second / raw C_Sign per second | **{:.3}** saturated (target ≥ 0.90); {} at the p99 target |",
        r.issue_ratio,
        or_dash(r.issue_ratio_at_target, |x| format!("{x:.3}"))
    );
    let headline = r.confirm.iter().find(|c| (c.fraction - st.headline_fraction).abs() < 1e-9);
    let at = format!("at {:.0}% of capacity", st.headline_fraction * 100.0);
    let in_server = headline.filter(|c| c.excl_hsm_method == ExclHsmMethod::InServer);
    let shortfall = in_server.and_then(|c| {
        let (server, hsm) = (c.server_cpu_us?, c.hsm_cpu_us_per_request?);
        Some(format!(
            " Of the {server:.0} µs segl spends per card, {hsm:.0} µs are C_Sign inside the server and {:.0} µs segl's own work: \
             the ratio falls short of 1 by {:.3} for segl's own work and by {:.3} because a C_Sign costs more inside the busy server \
             ({} µs per signature) than alone ({:.0} µs).",
            server - hsm,
            (server - hsm) / server,
            (hsm - r.cpu_us_per_sign) / server,
            or_dash(c.hsm_cpu_us_per_sign, |u| format!("{u:.0}")),
            r.cpu_us_per_sign
        ))
    });
    if r.cpu_ratio.is_some() {
        let _ = writeln!(
            o,
            "| CPU of one raw C_Sign / segl CPU per issued card | {} {at} = {:.0} µs (one C_Sign measured standalone) / {} (segl per card, HSM included): \
             what the issued/raw rate ratio would be on cores shared with nothing else (CPU time is far less disturbed by neighbours' load than rates are).{} |",
            or_dash(r.cpu_ratio, |x| format!("**{x:.3}**")),
            r.cpu_us_per_sign,
            or_dash(headline.and_then(|c| c.server_cpu_us), |u| format!("{u:.0} µs")),
            shortfall.unwrap_or_default()
        );
    }
    let tls_note = if st.tls { ", TLS included" } else { "; plain HTTP: TLS is not included" };
    let how = match in_server {
        Some(c) => format!(
            "= segl CPU {} per request − {} of C_Sign CPU per request measured in the server (segl's signing threads' CPU clock, same window){}; \
             subtracting one C_Sign measured standalone ({:.0} µs) instead would give {}",
            or_dash(c.server_cpu_us, |u| format!("{u:.0} µs")),
            or_dash(c.hsm_cpu_us_per_request, |u| format!("{u:.0} µs")),
            c.cpu_us_excl_hsm_user
                .zip(c.cpu_us_excl_hsm_kernel)
                .map(|(u, k)| format!("; {u:.0} µs of it user, {k:.0} µs kernel"))
                .unwrap_or_default(),
            r.cpu_us_per_sign,
            or_dash(c.cpu_us_excl_hsm_standalone, |u| format!("{u:.0} µs"))
        ),
        None => format!(
            "= segl CPU {} per request − {:.0} µs per C_Sign measured standalone: {}; a C_Sign inside a busy server costs more than alone, \
             so this overstates segl's own CPU",
            or_dash(headline.and_then(|c| c.server_cpu_us), |u| format!("{u:.0} µs")),
            r.cpu_us_per_sign,
            match &m.hsm_in_server_error {
                Some(e) => format!("segl's /metrics gave no C_Sign CPU ({e})"),
                None if m.confirm.iter().all(|c| c.result.hsm_cpu_ns.is_none()) => {
                    "no C_Sign CPU from segl in this report (from before segl counted it)".to_owned()
                }
                None => "segl's /metrics gave no usable C_Sign CPU for this run".to_owned(),
            }
        ),
    };
    let _ = writeln!(
        o,
        "| segl CPU per request excluding the HSM operation{tls_note} | **{}** {at} (target ≤ 50 µs) {how} |",
        or_dash(r.cpu_us_excl_hsm, |u| format!("{u:.0} µs")),
    );
    if let Some(sign) = r.hsm_cpu_us_per_sign_in_server {
        let _ = writeln!(
            o,
            "| C_Sign CPU measured in the server vs standalone | {sign:.0} µs per signature in the server {at} vs {:.0} µs standalone \
             (one session, segl idle){} |",
            r.cpu_us_per_sign,
            or_dash(r.hsm_cpu_in_server_over_standalone, |x| format!(": ×{x:.2}"))
        );
    }
    if let Some(x) = &m.in_process {
        // Inline, the thread's CPU held the signatures and the signer's count is taken off;
        // pipelined, the signing threads did them and the thread's CPU is all segl's own.
        let (made_of, added_by) = if m.server.signer.signs_on_the_serving_core() {
            (
                format!(
                    " = {:.0} µs CPU per request − {}",
                    x.cpu_us_per_request,
                    match x.hsm_cpu_us_per_request {
                        Some(h) => format!(
                            "{h:.0} µs of C_Sign CPU per request counted by the signer while serving ({:.0} µs per C_Sign signing back to back)",
                            x.cpu_us_per_sign
                        ),
                        None => format!("{:.0} µs per C_Sign on the same thread", x.cpu_us_per_sign),
                    }
                ),
                "executor and logging",
            )
        } else {
            (
                " of the serving thread's CPU per request (the pipelined signer signs on threads of its own)"
                    .to_owned(),
                "the executor, logging and the signing threads' side of each handover",
            )
        };
        let _ = writeln!(
            o,
            "| the same without HTTP: `segl::exchange::serve` in-process, one thread, {} requests | **{:.0} µs**{made_of}{}; so {} {added_by} add {} |",
            int(x.requests as f64),
            x.cpu_us_excl_hsm,
            if x.not_issued > 0 { format!(" ({} not issued!)", x.not_issued) } else { String::new() },
            if st.tls { "HTTP, TLS," } else { "HTTP," },
            or_dash(r.cpu_us_excl_hsm, |u| format!("≈ {:.0} µs", u - x.cpu_us_excl_hsm))
        );
    }
    let _ = writeln!(
        o,
        "| load generator's own ceiling (trivial server over plain HTTP, same run) | {}{} = **{}{}** capacity (target ≥ 5×){} |",
        if r.ceiling_is_lower_bound { "≥ " } else { "" },
        or_dash(r.generator_ceiling, |g| format!("{}/s", int(g))),
        if r.ceiling_is_lower_bound { "≥ " } else { "" },
        or_dash(r.ceiling_ratio, |x| format!("{x:.1}×")),
        if r.ceiling_is_lower_bound { "; every rate tried passed" } else { "" }
    );
    for t in m.tax_day.iter().chain(&m.tax_day_large_pool) {
        let surge = t.run.segments.iter().find(|s| s.label == "surge");
        let _ = writeln!(
            o,
            "| tax day: {}× surge to {}/s, {} | {} issued/s during the surge, {} failed, {} shed; {} s busy with no card in time; {} |",
            st.tax_day.surge_factor,
            int(t.profile.surge_rate),
            connections(t),
            or_dash(surge, |s| int(s.goodput)),
            or_dash(surge, |s| pct(s.failure_rate())),
            or_dash(surge, |s| pct(s.shed_rate())),
            busy_without_goodput(t, m.server.cores as f64),
            match recovery_secs(t) {
                Some(r) => format!("goodput back {r} s into the recovery"),
                None => "goodput not back within the recovery phase".into(),
            }
        );
        let f = OverloadFigures::of(t, report);
        let _ = writeln!(
            o,
            "| overload, {} | surge goodput / capacity **{}** (target ≥ 0.90); surge p99 / p99 at 80 % **{}** (≤ 3); recovery p99 / hold p99 **{}** (≤ 2) |",
            connections(t),
            or_dash(f.goodput_over_capacity, |x| format!("{x:.2}")),
            or_dash(f.surge_p99_over_80, |x| format!("{x:.2}")),
            or_dash(f.recovery_p99_over_hold, |x| format!("{x:.2}")),
        );
    }
    let _ = writeln!(
        o,
        "| requests sent to segl | {} ({} distinct pre-signed cards; {} requests re-sent a pooled card under a fresh message id) |\n",
        int(m.requests_sent as f64),
        int(m.pool.size as f64),
        int(m.reused_cards as f64)
    );

    let loads: Vec<String> = st.confirm_fractions.iter().map(|f| format!("{:.0}%", f * 100.0)).collect();
    let loads = match loads.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => loads.join(""),
    };
    let _ = writeln!(o, "## Latency at {loads} of capacity\n");
    let _ = writeln!(
        o,
        "Constant offered rate for {:.0} s each after a warm-up; latency from each request's intended send time.\n",
        st.confirm_secs
    );
    let _ = writeln!(
        o,
        "| load | offered/s | issued/s | p50 | p99 | p99.9 | failed | segl CPU µs/request | C_Sign CPU µs/signature in segl | excl. HSM µs/request | of it user | of it kernel | excl. HSM with C_Sign measured standalone | generator CPU µs/request |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut daggers = false;
    for c in &r.confirm {
        let standalone = c.excl_hsm_method == ExclHsmMethod::Standalone;
        daggers |= standalone && c.cpu_us_excl_hsm.is_some();
        let _ = writeln!(
            o,
            "| {:.0}% | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.fraction * 100.0,
            int(c.rate),
            int(c.goodput),
            ms(c.p50_ms),
            ms(c.p99_ms),
            ms(c.p999_ms),
            pct(c.failure_rate),
            or_dash(c.server_cpu_us, |u| format!("{u:.0}")),
            or_dash(c.hsm_cpu_us_per_sign, |u| format!("{u:.0}")),
            or_dash(c.cpu_us_excl_hsm, |u| format!("**{u:.0}**{}", if standalone { "†" } else { "" })),
            or_dash(c.cpu_us_excl_hsm_user, |u| format!("{u:.0}")),
            or_dash(c.cpu_us_excl_hsm_kernel, |u| format!("{u:.0}")),
            or_dash(c.cpu_us_excl_hsm_standalone, |u| format!("{u:.0}")),
            or_dash(c.generator_cpu_us, |u| format!("{u:.0}")),
        );
    }
    let _ = writeln!(
        o,
        "\nexcl. HSM = (segl CPU − the CPU segl's signing threads spent in C_Sign, counted by segl in the same window) / requests \
         answered; {} \
         The column after it subtracts one C_Sign measured standalone ({:.0} µs, segl idle) instead, as reports before \
         the in-server figure did.",
        if m.server.signer.signs_on_the_serving_core() {
            "user and kernel split it by the user:system ratio of segl's CPU (`/proc/<pid>/stat`), C_Sign being user time."
        } else {
            "user and kernel are not split: with the pipelined signer segl's C_Sign CPU is the client side of a call to \
             the HSM, mostly the kernel's socket work, not user time."
        },
        r.cpu_us_per_sign
    );
    dagger_note(&mut o, daggers, r.cpu_us_per_sign);

    let _ = writeln!(o, "\n## Sweep: finding the knee\n");
    let _ = writeln!(
        o,
        "Steps of {:.0} s (after {:.0} s unmeasured warm-up), rates from fractions of the raw signing rate, then ×{} until a step \
         fails, then {} bisection steps; a failing step is run once more{}. A step passes when p99 ≤ {} ms, failures ≤ {}, shed ≤ {}, and goodput ≥ {:.0}% of offered.\n",
        st.sweep.step_secs,
        st.sweep.warmup_secs,
        st.sweep.growth,
        st.sweep.refine,
        if st.sweep.retry_failed { " and the second try counts" } else { " (disabled: --no-retry)" },
        st.criteria.p99_target_ms,
        pct(st.criteria.max_failure_rate),
        pct(st.criteria.max_shed_rate),
        st.criteria.min_goodput_fraction * 100.0
    );
    let _ = writeln!(
        o,
        "| step | offered/s | issued/s | p50 | p99 | p99.9 | max | failed | shed | segl CPU µs/req | C_Sign CPU µs/sig in segl | excl. HSM µs/req | cores busy | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut daggers = false;
    for s in &m.sweep {
        let busy: Vec<String> = s.core_busy.iter().map(|b| format!("{:.0}%", b * 100.0)).collect();
        let mut verdict = match &s.failed {
            None => "pass".to_owned(),
            Some(why) => format!("fail: {why}"),
        };
        if let Some(first) = &s.first_try {
            verdict.push_str(&format!(" (second try; the first failed: {first})"));
        }
        daggers |= segment_row(
            &mut o,
            &int(s.rate),
            &s.result,
            r.cpu_us_per_sign,
            &format!(" {} | {verdict} |", busy.join(" ")),
        );
    }
    if let Some(s) = &m.saturation {
        daggers |= segment_row(
            &mut o,
            &format!("saturation {}", int(s.rate)),
            &s.result,
            r.cpu_us_per_sign,
            " | flat out |",
        );
    }
    dagger_note(&mut o, daggers, r.cpu_us_per_sign);
    let _ = writeln!(o, "\n![latency vs load](latency_vs_load.svg)\n\n![throughput vs load](throughput_vs_load.svg)\n\n![CPU vs load](cpu_vs_load.svg)\n");

    for (i, t) in m.tax_day.iter().chain(&m.tax_day_large_pool).enumerate() {
        let p = &t.profile;
        let [_, _, throughput, latency, cpu] = taxday_files(i);
        let _ = writeln!(o, "## Tax day, {}\n", connections(t));
        let _ = writeln!(
            o,
            "Baseline {}/s for {:.0} s, ramp to {}/s over {:.0} s, hold {:.0} s, surge to {}/s ({}× the peak) for {:.0} s, \
             recovery at {}/s for {:.0} s. Requests unanswered {} ms after their intended send time count as timeouts.\n",
            int(p.baseline_rate),
            p.baseline_secs,
            int(p.peak_rate),
            p.ramp_secs,
            p.hold_secs,
            int(p.surge_rate),
            st.tax_day.surge_factor,
            p.surge_secs,
            int(p.recovery_rate),
            p.recovery_secs,
            st.engine.timeout_ms
        );
        let _ = writeln!(
            o,
            "| phase | offered/s | issued/s | p50 | p99 | p99.9 | max | failed | shed | segl CPU µs/req | C_Sign CPU µs/sig in segl | excl. HSM µs/req |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let mut daggers = false;
        for s in &t.run.segments {
            daggers |= segment_row(&mut o, &s.label, s, r.cpu_us_per_sign, "");
        }
        dagger_note(&mut o, daggers, r.cpu_us_per_sign);
        let busy_idle = busy_without_goodput(t, m.server.cores as f64);
        if busy_idle > 0 {
            let _ = writeln!(
                o,
                "\nFor **{busy_idle} s** segl kept at least half its cores busy while not one card reached its client within the \
                 {} ms deadline: the work went into requests whose clients had already given up (metastable overload; \
                 refusing early is admission control's job).",
                st.engine.timeout_ms
            );
        }
        match recovery_secs(t) {
            Some(rec) => {
                let _ = writeln!(o, "\nAfter the surge, goodput was back at the offered rate {rec} s into the recovery phase.");
            }
            None if t.run.segments.iter().any(|s| s.label == "recovery") => {
                let _ =
                    writeln!(o, "\nGoodput did not get back to the offered rate within the recovery phase.");
            }
            None => {}
        }
        let _ = writeln!(
            o,
            "\n![tax day throughput]({})\n\n![tax day latency]({})\n\n![CPU per core]({})\n",
            throughput, latency, cpu
        );
    }

    let _ = writeln!(o, "## Raw HSM signing (same token, same run)\n");
    let _ = writeln!(
        o,
        "C_Sign of a SHA-1 DigestInfo (CKM_RSA_PKCS) with the STS key through `segl_pkcs11`, one thread per session, {:.0} s each, \
         while segl was idle: before the sweep and right after the saturation step.\n\n| when | sessions | signatures/s | CPU µs per signature |\n|---|---|---|---|",
        st.hsm_secs
    );
    for (when, h) in [
        ("before", &m.hsm.before_one),
        ("before", &m.hsm.before_all),
        ("after", &m.hsm.after_one),
        ("after", &m.hsm.after_all),
    ] {
        let _ = writeln!(o, "| {when} | {} | {} | {:.0} |", h.sessions, int(h.per_sec), h.cpu_us_per_sign);
    }
    if let Some(sign) = r.hsm_cpu_us_per_sign_in_server {
        let _ = writeln!(
            o,
            "\nThese are C_Sign measured standalone. Inside the server, during the {:.0}% run, segl's signing threads spent {sign:.0} µs \
             of CPU per signature in C_Sign (their thread CPU clock, `segl_hsm_sign_cpu_seconds_total` over \
             `segl_hsm_signatures_total` on segl's /metrics){}: the other threads' work evicts the key and SoftHSM from the caches, \
             and on a shared machine neighbours do too. segl's own CPU subtracts the in-server figure.",
            st.headline_fraction * 100.0,
            or_dash(r.hsm_cpu_in_server_over_standalone, |x| format!(", ×{x:.2} the standalone {:.0} µs", r.cpu_us_per_sign))
        );
    }

    let _ = writeln!(o, "\n## The generator's own ceiling\n");
    let _ = writeln!(
        o,
        "The same generator, connections and request bodies against a trivial HTTP server (a child process answering every request \
         with a fixed {}-byte 200, the size of an issued-card response), in steps at multiples of the capacity, over plain HTTP{}. \
         A step passes when p99 ≤ {} ms with no failures and goodput ≥ {:.0}% of offered.\n",
        m.ceiling_body_bytes,
        if st.tls {
            " (segl's load went over TLS, which costs the generator more CPU per request than this shows; the ceiling over TLS is lower)"
        } else {
            ""
        },
        st.criteria.p99_target_ms,
        st.criteria.min_goodput_fraction * 100.0
    );
    let _ = writeln!(o, "| offered/s | answered/s | p50 | p99 | p99.9 | max | failed | verdict | generator CPU µs/request |\n|---|---|---|---|---|---|---|---|---|");
    for s in &m.ceiling {
        let l = &s.result.latency;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            int(s.rate),
            int(s.result.goodput),
            ms(l.p50_ms),
            ms(l.p99_ms),
            ms(l.p999_ms),
            ms(l.max_ms),
            pct(s.result.failure_rate()),
            s.failed.as_deref().unwrap_or("pass"),
            or_dash(s.result.generator_cpu_us_per_request(), |u| format!("{u:.1}"))
        );
    }

    sizing(&mut o, report);

    per_endpoint(&mut o, report);
    let _ = writeln!(o, "\n## Method\n");
    let _ = writeln!(
        o,
        "- Open loop: each request is due at a time fixed by the schedule; when all {} connections are busy it waits in the \
         generator, and its latency still counts from the time it was due (no coordinated omission). {}.\n\
         - Every request carries its own pre-built, pre-signed ID card (its own id and signature) and its own DGWS message id; \
         the pool of {} cards was built before the timed phases by {} threads in {:.0} s. Card kinds, cycled: {}. \
         Once the pool is used up, a pooled card is sent again under a fresh message id ({} such requests).\n\
         - Endpoint mix: {}.\n\
         - Transport of segl's load: {}.\n\
         - segl runs as a child process of the generator (`segl-load serve-segl`, the same `segl::server::run` as `segl serve`); \
         its CPU is the sum of its threads' on-CPU time (`/proc/<pid>/task/*/schedstat`) over each measured segment, divided by \
         the requests it answered; its user and system time come from `/proc/<pid>/stat`. SoftHSM signs inside segl's process, \
         so the HSM's CPU is in that figure. {}\n\
         - Core utilisation is read from `/proc/stat` once a second.\n\
         - segl's log during the run: {} WARN and {} ERROR lines{}.",
        st.engine.connections,
        if st.engine.keep_alive { "HTTP/1.1 keep-alive connections" } else { "a new connection per request" },
        int(m.pool.size as f64),
        m.pool.threads,
        m.pool.build_secs,
        m.pool.card_mix.join("; "),
        int(m.reused_cards as f64),
        st.mix.iter().map(|(p, w)| format!("`{p}` × {w}")).collect::<Vec<_>>().join(", "),
        transport(report),
        match &m.hsm_in_server_error {
            None if r.excl_hsm_method == ExclHsmMethod::InServer => "segl's signing threads time each C_Sign with their thread CPU clock \
                 and publish the sum on segl's admin listener (`segl_hsm_sign_cpu_seconds_total`, with `segl_hsm_signatures_total`); \
                 the generator reads it at the start and end of each measured window, with segl's CPU right after, and subtracts \
                 the window's C_Sign CPU from segl's CPU to give segl's own CPU per request. The C_Sign CPU measured standalone, \
                 on one session of the same token while segl idled, is shown beside it for comparison only: a C_Sign inside the \
                 busy server costs more."
                .to_owned(),
            None => "The CPU of one C_Sign, measured on one session of the same token in the same run while segl idled, is \
                 subtracted to give segl's own CPU per request (segl's /metrics gave no C_Sign CPU for the headline run; a C_Sign \
                 inside the busy server costs more than alone, so this overstates segl's own CPU)."
                .to_owned(),
            Some(e) => format!(
                "segl's /metrics gave no C_Sign CPU ({e}), so the CPU of one C_Sign, measured on one session of the same token in \
                 the same run while segl idled, is subtracted instead to give segl's own CPU per request; a C_Sign inside the busy \
                 server costs more than alone, so this overstates segl's own CPU."
            ),
        },
        m.server.log_warnings,
        m.server.log_errors,
        if m.server.log_samples.is_empty() { String::new() } else { format!(", e.g. `{}`", m.server.log_samples[0]) }
    );
    let _ = writeln!(o, "\nFiles: `report.json` (everything), `sweep.csv`, `confirm.csv`, `taxday_phases.csv`, `taxday_seconds.csv` (and `taxday_large_pool_*` for the large client pool), `hsm.csv`, `ceiling.csv`, `sizing.csv`, and the SVG plots above.");
    o
}

/// Each endpoint's figures, for a mix with an OIO exchange (nothing for DGWS alone): the
/// saturation step and the 50/80/100% runs. segl's CPU per request and the HSM signatures per
/// issued token are an endpoint's only in a run that sent it alone.
fn per_endpoint(o: &mut String, report: &Report) {
    let m = &report.measurements;
    let mut runs: Vec<(String, &crate::record::SegmentRecord)> = Vec::new();
    if let Some(s) = &m.saturation {
        runs.push((format!("saturation, {}/s offered", int(s.rate)), &s.result));
    }
    for c in &m.confirm {
        runs.push((format!("{:.0}% of capacity", c.fraction * 100.0), &c.result));
    }
    if runs.iter().all(|(_, r)| r.endpoints.is_empty()) {
        return;
    }
    let _ = writeln!(o, "\n## Per endpoint\n");
    if let Some(oio) = &m.pool.sosi2oiosaml {
        let _ = writeln!(
            o,
            "Sosi2OIOSaml requests: {} built before the timed phases, each with its own MessageID, presenting {} STS-signed cards \
             from {} for the audience `{}` ({} bytes on average). A Sosi2OIOSaml answer costs two HSM signatures (the assertion and \
             the answer's header), a DGWS card one.\n",
            int(oio.size as f64),
            oio.cards,
            oio.card_source,
            oio.audience,
            int(oio.mean_body_bytes as f64)
        );
    }
    for (kind, p) in m.pool.signed_oio() {
        let name = kind.name();
        let _ = writeln!(
            o,
            "{name} requests: {} built before the timed phases, each with its own MessageID and header signature by {} \
             (segl refuses a replayed MessageID: a pool that ran out would send some twice, and they fail), presenting {} \
             tokens minted by {}: {} ({} bytes on average). A {name} answer costs two HSM signatures \
             ({}).\n",
            int(p.size as f64),
            p.signer,
            p.tokens,
            kind.minted_by(),
            p.presented.join("; "),
            int(p.mean_body_bytes as f64),
            kind.signed_by_the_sts()
        );
    }
    let _ = writeln!(
        o,
        "| run | endpoint | issued/s | p50 | p99 | failed | segl CPU µs/request | HSM signatures per token |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for (label, r) in runs {
        let sole = r.sole_endpoint().map(|e| e.path.clone());
        for e in r.endpoints.iter().filter(|e| e.counts.total() > 0) {
            let alone = sole.as_deref() == Some(e.path.as_str());
            let _ = writeln!(
                o,
                "| {label} | `{}` | {} | {} | {} | {} | {} | {} |",
                e.path,
                int(e.goodput),
                ms(e.latency.p50_ms),
                ms(e.latency.p99_ms),
                e.counts.failed(),
                if alone {
                    or_dash(r.server_cpu_us_per_request(), |u| format!("{u:.0}"))
                } else {
                    "mixed".into()
                },
                if alone {
                    or_dash(r.signatures_per_issued(), |x| format!("{x:.2}"))
                } else {
                    "mixed".into()
                },
            );
        }
    }
    let _ = writeln!(
        o,
        "\nIn a run that mixes endpoints segl's CPU and signatures are not attributed to one of them (\"mixed\"); \
         `segl-load compare` measures endpoints one after the other against one segl for that."
    );
}

/// The generator's connections in a tax-day run, as the report's headline names them.
fn connections(t: &super::TaxDayRun) -> String {
    or_dash(t.connections, |c| format!("{} connections", int(c as f64)))
}

/// The files of the `i`-th tax-day run: phases and seconds (CSV), throughput, latency and CPU
/// per core (SVG). The first run keeps the names reports have always had.
pub fn taxday_files(i: usize) -> [&'static str; 5] {
    if i == 0 {
        [
            "taxday_phases.csv",
            "taxday_seconds.csv",
            "taxday_throughput.svg",
            "taxday_latency.svg",
            "cpu_per_core.svg",
        ]
    } else {
        [
            "taxday_large_pool_phases.csv",
            "taxday_large_pool_seconds.csv",
            "taxday_large_pool_throughput.svg",
            "taxday_large_pool_latency.svg",
            "taxday_large_pool_cpu_per_core.svg",
        ]
    }
}

/// The overload figures of a tax-day run, each a ratio of two measurements of the same report.
pub struct OverloadFigures {
    /// Cards issued per second during the surge over the capacity at the p99 target.
    pub goodput_over_capacity: Option<f64>,
    /// p99 during the surge over p99 of the run at 80 % of capacity.
    pub surge_p99_over_80: Option<f64>,
    /// p99 in the recovery over p99 in the hold.
    pub recovery_p99_over_hold: Option<f64>,
}

impl OverloadFigures {
    /// The figures of `t` against the rest of `report`.
    pub fn of(t: &super::TaxDayRun, report: &Report) -> OverloadFigures {
        let phase = |label: &str| t.run.segments.iter().find(|s| s.label == label);
        let at_80 = report.measurements.confirm.iter().find(|c| (c.fraction - 0.8).abs() < 1e-9);
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        OverloadFigures {
            goodput_over_capacity: phase("surge")
                .zip(report.results.capacity)
                .and_then(|(s, c)| ratio(s.goodput, c)),
            surge_p99_over_80: phase("surge")
                .zip(at_80)
                .and_then(|(s, c)| ratio(s.latency.p99_ms, c.result.latency.p99_ms)),
            recovery_p99_over_hold: phase("recovery")
                .zip(phase("hold"))
                .and_then(|(r, h)| ratio(r.latency.p99_ms, h.latency.p99_ms)),
        }
    }
}

/// Seconds into the recovery phase until the tokens issued in a second reach 98% of the
/// requests offered in it, with no failures.
pub fn recovery_secs(t: &super::TaxDayRun) -> Option<u32> {
    t.run.segments.iter().find(|s| s.label == "recovery")?;
    let start: f64 = t.run.segments.iter().take_while(|s| s.label != "recovery").map(|s| s.secs).sum();
    let (start, end) = (start.ceil() as u32, t.run.segments.iter().map(|s| s.secs).sum::<f64>() as u32);
    t.run
        .seconds
        .iter()
        .filter(|s| s.t >= start && s.t < end)
        .find(|s| s.offered > 0 && s.done.ok as f64 >= 0.98 * s.offered as f64 && s.done.failed() == 0)
        .map(|s| s.t - start)
}

/// Seconds of the tax-day run in which segl used at least half its cores and issued nothing in
/// time while requests were being offered.
pub fn busy_without_goodput(t: &super::TaxDayRun, cores: f64) -> usize {
    t.run
        .seconds
        .iter()
        .filter(|s| s.offered > 0 && s.done.ok == 0 && s.server_cores.is_some_and(|c| c >= cores / 2.0))
        .count()
}

fn sizing(o: &mut String, report: &Report) {
    let (st, r) = (&report.settings, &report.results);
    let d = &st.peak_day;
    let _ = writeln!(o, "\n## Sizing\n");
    let _ = writeln!(
        o,
        "A node is bounded by its CPU and by its HSM. With an external HSM:\n\n\
         - HSMs = ⌈ R × s / (H × u) ⌉, where R is the peak rate (requests/s), s the signatures per request (1 for an ID card), \
         H one HSM's RSA-2048 signatures/s, u the planned utilisation ({}).\n\
         - nodes = ⌈ R / (k × u × 10⁶ / c) ⌉, where k is cores per node ({}) and c segl's CPU µs per request excluding the HSM \
         operation (measured: {}, {}{}).\n\
         - With the embedded default (SoftHSM in each node, signing on the node's own cores) both limits are the one measured \
         figure: nodes = ⌈ R / C ⌉ with C the capacity at the p99 target ({}/s).\n\
         - Add one node (and one HSM) for N+1 redundancy.\n",
        st.headroom,
        report.measurements.server.cores,
        or_dash(r.cpu_us_excl_hsm, |u| format!("{u:.0} µs")),
        r.excl_hsm_method.describe(),
        if st.tls { ", TLS included" } else { ", plain HTTP" },
        or_dash(r.capacity, int)
    );
    let _ = writeln!(
        o,
        "**Norwegian tax day**: 3.58 million logins in a day. Assumed: the busiest hour carries {:.0}% of the day's logins \
         ({} × {} / 3600 s = {}/s on average), and within it the rate surges to {}× that mean, as the tax-day profile's surge \
         does: R = {}/s, one ID card (one signature) per login.\n",
        d.peak_hour_share * 100.0,
        int(d.logins_per_day),
        d.peak_hour_share,
        int(d.peak_hour_rate()),
        d.surge_factor,
        int(r.tax_day_rate)
    );
    table(o, r.tax_day_rate, r.tax_day_embedded_nodes, &r.tax_day_sizing, r.capacity);
    let _ = writeln!(
        o,
        "\n**A rate you choose**: R = {}/s (`--target-rate`; recompute for any rate and HSM with \
         `segl-load size --report report.json --rate R --hsm-rate H`).\n",
        int(r.target_rate)
    );
    table(o, r.target_rate, r.target_embedded_nodes, &r.target_sizing, r.capacity);
    if r.cpu_us_excl_hsm.is_some_and(|c| c < super::sizing::MIN_CPU_US) {
        let _ = writeln!(
            o,
            "\nsegl's CPU per request excluding the HSM came out below the measurement's resolution; the sizing uses {} µs.",
            super::sizing::MIN_CPU_US
        );
    }
}

fn table(
    o: &mut String,
    rate: f64,
    embedded: Option<u64>,
    sizes: &[super::sizing::Sizing],
    capacity: Option<f64>,
) {
    let _ = writeln!(
        o,
        "| HSM | signatures/s per HSM | HSMs | requests/s per node (CPU) | nodes |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        o,
        "| embedded SoftHSM, as measured | (in the node) | (one per node) | {} at p99 target | **{}** = ⌈{} / {}⌉ |",
        or_dash(capacity, int),
        or_dash(embedded, |n| n.to_string()),
        int(rate),
        or_dash(capacity, int)
    );
    for s in sizes {
        let _ = writeln!(
            o,
            "| {} | {} | **{}** = ⌈{} / ({} × u)⌉ | {} | **{}** |",
            s.hsm.name,
            int(s.hsm.signs_per_sec),
            s.hsms,
            int(s.rate),
            int(s.hsm.signs_per_sec),
            int(s.node_cpu_rate),
            s.nodes
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_endpoint_section_appears_only_with_an_oio_endpoint() {
        use crate::record::{Counts, EndpointRecord, Latency};
        let (mut settings, mut m) = crate::report::tests::synthetic();
        let report = |settings: &crate::report::Settings, m: &crate::report::Measurements| Report {
            settings: settings.clone(),
            measurements: m.clone(),
            results: crate::report::analyse(settings, m),
        };
        assert!(!summary(&report(&settings, &m)).contains("## Per endpoint"));
        let endpoint = |path: &str, ok: u64| EndpointRecord {
            path: path.into(),
            counts: Counts { ok, ..Counts::default() },
            goodput: ok as f64 / 10.0,
            latency: Latency { p50_ms: 4.0, p99_ms: 9.0, ..Latency::default() },
        };
        let (new, oio) = ("/sts/services/NewSecurityTokenService", "/sts/services/Sosi2OIOSaml");
        settings.mix = vec![(new.into(), 1), (oio.into(), 1)];
        let sat = m.saturation.as_mut().unwrap();
        sat.result.endpoints = vec![endpoint(new, 0), endpoint(oio, 8000)];
        sat.result.hsm_signatures = Some(2 * sat.result.counts.ok);
        for c in &mut m.confirm {
            c.result.endpoints = vec![endpoint(new, 5000), endpoint(oio, 5000)];
        }
        let text = summary(&report(&settings, &m));
        assert!(text.contains("## Per endpoint"), "{text}");
        let sat_row = text.lines().find(|l| l.starts_with("| saturation") && l.contains(oio)).unwrap();
        assert!(sat_row.contains("| 800 |") && sat_row.ends_with("| 2.00 |"), "{sat_row}");
        assert!(
            !text.lines().any(|l| l.starts_with("| saturation") && l.contains(new)),
            "an endpoint with no requests"
        );
        assert!(
            text.lines().any(|l| l.starts_with("| 80% of capacity") && l.ends_with("| mixed | mixed |")),
            "{text}"
        );
        // Sizing counts two signatures per Sosi2OIOSaml request.
        assert_eq!(crate::report::signatures_per_request(&settings.mix), 1.5);
        // The header-signed parts of the pool are described.
        let mut m = m.clone();
        m.pool.bst2sosi = Some(crate::pool::SignedOioPoolStats {
            size: 1200,
            tokens: 64,
            presented: vec!["OIOH3BST from https://idp.example".into()],
            signer: "voces (RSA-SHA256)".into(),
            build_secs: 1.5,
            mean_body_bytes: 9000,
        });
        assert_eq!(
            m.pool.signed_oio().map(|(k, _)| k).collect::<Vec<_>>(),
            [crate::pool::RequestKind::Bst2Sosi]
        );
        let text = summary(&report(&settings, &m));
        assert!(
            text.contains("BST2SOSI requests: 1,200 built before the timed phases")
                && text.contains(
                    "64 tokens minted by the development IdP key: OIOH3BST from https://idp.example"
                ),
            "{text}"
        );
        assert!(!text.contains("OIOSaml2Sosi requests:"), "{text}");
        assert!(
            text.contains("A BST2SOSI answer costs two HSM signatures (the card and the answer's header)")
        );
        // A citizen part says who minted its tokens and what segl signs.
        m.pool.jwt2oiosaml = Some(crate::pool::SignedOioPoolStats {
            presented: vec!["RS256 JWT of https://oidc.example for https://sp.example/".into()],
            ..m.pool.bst2sosi.clone().unwrap()
        });
        let text = summary(&report(&settings, &m));
        assert!(
            text.contains("JWT2OIOSaml requests: 1,200 built before the timed phases")
                && text.contains("64 tokens minted by the development JWT issuer's key: RS256 JWT of")
                && text.contains(
                    "A JWT2OIOSaml answer costs two HSM signatures (the assertion and the answer's header)"
                ),
            "{text}"
        );
        // ... and per BST2SOSI and OIOSaml2Sosi request.
        let all = [new, oio, "/sts/services/BST2SOSI", "/sts/services/OIOSaml2Sosi"];
        let all: Vec<(String, u32)> = all.iter().map(|p| (p.to_string(), 1)).collect();
        assert_eq!(crate::report::signatures_per_request(&all), 1.75);
        // ... and per citizen request, under either JWT2Idws path.
        let citizen = [new, "/sts/services/Bst2Idws", "/sts/services/JWTIdws", "/sts/services/JWT2OIOSaml"];
        let citizen: Vec<(String, u32)> = citizen.iter().map(|p| (p.to_string(), 1)).collect();
        assert_eq!(crate::report::signatures_per_request(&citizen), 1.75);
        assert_eq!(crate::report::signatures_per_request(&[(new.into(), 9), ("/x".into(), 1)]), 1.0);
    }

    #[test]
    fn tax_day_recovery_and_busy_seconds_without_goodput() {
        use crate::record::{Counts, RunRecord, SecondRecord};
        let seg = |label: &str, secs: f64| {
            let mut s = crate::report::tests::segment(100.0, 100.0, 5.0, None);
            s.label = label.into();
            s.secs = secs;
            s
        };
        let second = |t: u32, offered: u64, ok: u64, timeout: u64, cores: f64| SecondRecord {
            t,
            offered,
            done: Counts { ok, timeout, ..Counts::default() },
            server_cores: Some(cores),
            ..SecondRecord::default()
        };
        let run = RunRecord {
            segments: vec![seg("surge", 2.0), seg("recovery", 4.0)],
            seconds: vec![
                second(0, 300, 100, 0, 1.9),
                second(1, 300, 0, 200, 1.9),
                second(2, 100, 0, 300, 1.9),
                second(3, 100, 50, 60, 1.8),
                second(4, 100, 99, 0, 1.2),
                second(5, 100, 100, 0, 0.8),
            ],
            wall_secs: 6.0,
            reused_cards: 0,
        };
        let profile = crate::profiles::TaxDay::relative_to(100.0, 1.0, 1.0, 3.0, [0.0, 0.0, 0.0, 2.0, 4.0]);
        let t = crate::report::TaxDayRun { profile, connections: Some(128), run };
        assert_eq!(busy_without_goodput(&t, 2.0), 2);
        // The recovery starts at t = 2; t = 4 is the first second at ≥ 98% without failures.
        assert_eq!(recovery_secs(&t), Some(2));
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(int(1234567.4), "1,234,567");
        assert_eq!(int(999.6), "1,000");
        assert_eq!(int(-1500.0), "-1,500");
        assert_eq!(ms(0.4567), "0.46 ms");
        assert_eq!(ms(123.4), "123 ms");
        assert_eq!(pct(0.001), "0.10%");
    }
}
