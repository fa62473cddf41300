import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** A database pgferry connects to, and where it is on the network. */
export interface DatabaseEndpoint {
  /** Names the rules for this database (unique in the stack). */
  readonly id: string;
  readonly port: number;
  /**
   * The database's security group.
   * @default none: give `cidr`
   */
  readonly securityGroupId?: string;
  /**
   * The address range the database is in.
   * @default none: give `securityGroupId`
   */
  readonly cidr?: string;
  /**
   * Add an ingress rule for pgferry's clients to the database's security group.
   * @default true
   */
  readonly allowIngress?: boolean;
}

export interface NetworkProps {
  /**
   * An existing VPC to run in; its private subnets must reach the databases and AWS APIs.
   * @default a new VPC, built from `vpcProps`
   */
  readonly existingVpc?: ec2.IVpc;
  /**
   * Settings of the new VPC (ignored with `existingVpc`); merged over the defaults: two zones,
   * one NAT gateway, public and private subnets.
   * @default the defaults
   */
  readonly vpcProps?: ec2.VpcProps;
  /** The databases pgferry's clients may connect to; nothing else is reachable but HTTPS. */
  readonly databases: readonly DatabaseEndpoint[];
  /**
   * How long the new VPC's flow logs are kept.
   * @default three months
   */
  readonly flowLogRetention?: logs.RetentionDays;
}

const DEFAULT_VPC_PROPS: ec2.VpcProps = {
  maxAzs: 2,
  natGateways: 1,
  subnetConfiguration: [
    { name: 'Public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
    { name: 'Private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
  ],
};

/**
 * Where pgferry runs: the VPC (an existing one, or a new one with flow logs and an S3 gateway
 * endpoint) and the security group of everything that connects to databases (the preflight
 * function and the pg-tools task), which may open connections only to the configured databases'
 * ports and to HTTPS (AWS APIs), and accepts none.
 */
export class Network extends Construct {
  readonly vpc: ec2.IVpc;
  /** The private subnets pgferry's functions and tasks run in. */
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
  /** The security group of pgferry's database clients. */
  readonly databaseClients: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    this.vpc = props.existingVpc ?? this.createVpc(props);
    this.databaseClients = new ec2.SecurityGroup(this, 'DatabaseClients', {
      vpc: this.vpc,
      description: 'pgferry database clients: the databases ports and HTTPS out, nothing in',
      allowAllOutbound: false,
    });
    this.databaseClients.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'AWS APIs: S3, Secrets Manager, ECR, CloudWatch Logs, STS',
    );
    for (const db of props.databases) this.allowDatabase(db);
  }

  private allowDatabase(db: DatabaseEndpoint): void {
    const port = ec2.Port.tcp(db.port);
    const description = `pgferry to database ${db.id}`;
    if (db.securityGroupId) {
      const group = ec2.SecurityGroup.fromSecurityGroupId(this, `${db.id}SecurityGroup`, db.securityGroupId, {
        mutable: db.allowIngress ?? true,
        allowAllOutbound: false,
      });
      // Egress from pgferry and, when the group is mutable, the database's ingress rule.
      this.databaseClients.connections.allowTo(group, port, description);
    }
    if (db.cidr) this.databaseClients.addEgressRule(ec2.Peer.ipv4(db.cidr), port, description);
  }

  private createVpc(props: NetworkProps): ec2.Vpc {
    const { maxAzs, ...merged } = { ...DEFAULT_VPC_PROPS, ...props.vpcProps };
    const vpc = new ec2.Vpc(this, 'Vpc', {
      ...merged,
      // Naming the zones replaces their number.
      ...(merged.availabilityZones ? {} : { maxAzs }),
      flowLogs: {
        all: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(
            new logs.LogGroup(this, 'FlowLogs', {
              retention: props.flowLogRetention ?? logs.RetentionDays.THREE_MONTHS,
              removalPolicy: RemovalPolicy.RETAIN,
            }),
          ),
          trafficType: ec2.FlowLogTrafficType.ALL,
        },
      },
    });
    // Backups reach S3 without paying for NAT traffic.
    vpc.addGatewayEndpoint('S3', { service: ec2.GatewayVpcEndpointAwsService.S3 });
    return vpc;
  }
}
