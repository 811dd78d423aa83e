//! Metrics shared by name across all VMs of a host, as Envoy's stats are.

use std::collections::HashMap;

use crate::abi::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    pub fn from_abi(v: u32) -> Option<Self> {
        match v {
            0 => Some(MetricType::Counter),
            1 => Some(MetricType::Gauge),
            2 => Some(MetricType::Histogram),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub kind: MetricType,
    /// Counter total or gauge value.
    pub value: i64,
    /// Every value recorded into a histogram.
    pub samples: Vec<u64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    by_id: Vec<Metric>,
    by_name: HashMap<(MetricType, String), u32>,
}

impl Metrics {
    /// Defines (or finds) a metric. The same name and type yields the same id on every VM.
    pub fn define(&mut self, kind: MetricType, name: &str) -> u32 {
        if let Some(id) = self.by_name.get(&(kind, name.to_string())) {
            return *id;
        }
        self.by_id.push(Metric { name: name.to_string(), kind, value: 0, samples: Vec::new() });
        let id = self.by_id.len() as u32; // ids start at 1
        self.by_name.insert((kind, name.to_string()), id);
        id
    }

    fn get_mut(&mut self, id: u32) -> Result<&mut Metric, Status> {
        (id as usize).checked_sub(1).and_then(|i| self.by_id.get_mut(i)).ok_or(Status::NotFound)
    }

    /// Envoy: counters take only positive offsets (else BadArgument); gauges add or subtract;
    /// histograms cannot be incremented.
    pub fn increment(&mut self, id: u32, offset: i64) -> Result<(), Status> {
        let m = self.get_mut(id)?;
        match m.kind {
            MetricType::Counter if offset > 0 => m.value = m.value.saturating_add(offset),
            MetricType::Counter => return Err(Status::BadArgument),
            MetricType::Gauge => m.value = m.value.saturating_add(offset),
            MetricType::Histogram => return Err(Status::BadArgument),
        }
        Ok(())
    }

    /// Envoy: a counter adds, a gauge is set, a histogram records a sample.
    pub fn record(&mut self, id: u32, value: u64) -> Result<(), Status> {
        let m = self.get_mut(id)?;
        match m.kind {
            MetricType::Counter => m.value = m.value.saturating_add(value as i64),
            MetricType::Gauge => m.value = value as i64,
            MetricType::Histogram => m.samples.push(value),
        }
        Ok(())
    }

    /// Envoy: histograms cannot be read back (BadArgument).
    pub fn get(&mut self, id: u32) -> Result<u64, Status> {
        let m = self.get_mut(id)?;
        match m.kind {
            MetricType::Histogram => Err(Status::BadArgument),
            _ => Ok(m.value as u64),
        }
    }

    /// The counter or gauge called `name`.
    pub fn value(&self, name: &str) -> Option<i64> {
        self.by_id.iter().find(|m| m.name == name && m.kind != MetricType::Histogram).map(|m| m.value)
    }

    pub fn samples(&self, name: &str) -> Option<Vec<u64>> {
        self.by_id.iter().find(|m| m.name == name && m.kind == MetricType::Histogram).map(|m| m.samples.clone())
    }

    pub fn all(&self) -> Vec<Metric> {
        self.by_id.clone()
    }
}
